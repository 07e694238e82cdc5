"""Config validation: LiteLLM's format, os.environ/ secrets, exact error locations."""

from __future__ import annotations

import pytest

from proxy.settings import ConfigError, parse_config

GOOD = """\
model_list:
  - model_name: mixtral
    litellm_params:
      model: openai/mixtral
      api_base: http://127.0.0.1:30000/v1
  - model_name: mistral-hosted
    litellm_params:
      model: mistral/open-mixtral-8x7b
      api_key: os.environ/MG_TEST_MISTRAL_KEY
router_settings:
  num_retries: 1
  timeout: 20
  fallbacks: [{"mixtral": ["mistral-hosted"]}]
mixguard:
  api_keys:
    - key: sk-1
      app: billing
"""


def test_valid_config_resolves_env_secrets_and_fallbacks(monkeypatch):
    monkeypatch.setenv("MG_TEST_MISTRAL_KEY", "secret-value")
    cfg = parse_config(GOOD, "c.yaml")
    assert cfg.model_list[1].litellm_params.api_key == "secret-value"
    assert cfg.router_settings.fallback_map() == {"mixtral": ["mistral-hosted"]}
    assert cfg.model_list[0].litellm_params.openai_compatible
    assert not cfg.model_list[1].litellm_params.openai_compatible


def test_missing_env_secret_names_file_line_and_key(monkeypatch):
    monkeypatch.delenv("MG_TEST_MISTRAL_KEY", raising=False)
    with pytest.raises(ConfigError) as exc:
        parse_config(GOOD, "c.yaml")
    assert "c.yaml:9: model_list[1].litellm_params.api_key: environment variable MG_TEST_MISTRAL_KEY is not set" in str(
        exc.value
    )


def test_type_errors_and_unknown_keys_have_locations():
    bad = GOOD.replace("timeout: 20", "timeout: -3").replace("app: billing", "app: billing\n      colour: red")
    with pytest.raises(ConfigError) as exc:
        parse_config(bad.replace("os.environ/MG_TEST_MISTRAL_KEY", "k"), "c.yaml")
    msg = str(exc.value)
    assert "c.yaml:12: router_settings.timeout" in msg
    assert "c.yaml:18: mixguard.api_keys[0].colour: Extra inputs are not permitted" in msg


def test_fallback_to_unknown_group_is_rejected():
    with pytest.raises(ConfigError, match="names 'nope'"):
        parse_config(GOOD.replace('["mistral-hosted"]', '["nope"]').replace("os.environ/MG_TEST_MISTRAL_KEY", "k"))


def test_yaml_syntax_error_has_line():
    with pytest.raises(ConfigError, match=r"c.yaml:3: not valid YAML"):
        parse_config("model_list:\n  - [unclosed\n", "c.yaml")


def test_key_hash_must_be_sha256():
    with pytest.raises(ConfigError, match="key_hash"):
        parse_config(GOOD.replace("key: sk-1", "key_hash: md5:abc").replace("os.environ/MG_TEST_MISTRAL_KEY", "k"))


def test_shipped_example_config_is_valid(monkeypatch):
    from pathlib import Path

    for var in (
        "REDIS_URL",
        "MISTRAL_API_KEY",
        "TOGETHERAI_API_KEY",
        "GROQ_API_KEY",
        "FIREWORKS_API_KEY",
        "MIXGUARD_ADMIN_KEY",
        "BILLING_APP_KEY",
        "SUPPORT_APP_KEY",
    ):
        monkeypatch.setenv(var, "x")
    path = Path(__file__).resolve().parents[2] / "deploy" / "config.example.yaml"
    cfg = parse_config(path.read_text(), str(path))
    assert cfg.router_settings.fallback_map()["mixtral"][0] == "mixtral-mistral"
    assert [d.litellm_params.openai_compatible for d in cfg.model_list].count(True) == 1
