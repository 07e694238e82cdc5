"""untuned_withheld.jsonl: generated sentences whose names, streets and cities come from a source no
detector loads, in templates written for this set (not presidio-evaluator's).

Names, cities and streets come from mimesis's locale data (its own JSON files, not Faker's), and
every value in which some word is in a gazetteer the detectors load (Faker's given and family
names, the country names) is dropped: the name recognizers cannot have seen any of them. Phone
formats are mimesis's per locale; card numbers, IBANs, SSNs and IP addresses are drawn here with
valid check digits.

    pip install --target /tmp/mimesis-lib mimesis==22.2.0
    python tests/data/make_withheld_set.py --mimesis /tmp/mimesis-lib [--seed 2026] [--n 400]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path

from _setlib import HERE, from_markup, iban_complete, luhn_complete, write_jsonl

sys.path.insert(0, str(HERE.parent.parent))

#: Locales drawn from (mimesis names), by weight: Latin-script locales mostly, a few others.
LOCALES = {
    "cs": 3, "da": 3, "de": 2, "de-at": 3, "de-ch": 3, "en": 3, "es": 1, "es-mx": 2, "et": 2, "fi": 3, "fr": 3,
    "hr": 2, "hu": 3, "is": 2, "it": 3, "nl": 3, "no": 2, "pl": 3, "pt": 2, "pt-br": 3, "sv": 2, "tr": 2, "sk": 2,
    "az": 1, "el": 1, "uk": 1, "ru": 1, "kk": 1,
}  # fmt: skip

DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.net", "seznam.cz", "orange.fr", "libero.it",
           "ziggo.nl", "telia.com", "wp.pl", "uol.com.br", "mail.ru", "freemail.hu", "protonmail.com", "icloud.com",
           "acme-logistics.com", "northwind.eu", "kontor-nord.de", "studio-aurora.it"]  # fmt: skip

#: (country, BBAN layout: n = digit, a = capital letter, c = either)
IBAN_LAYOUTS = [("DE", "n" * 18), ("FR", "n" * 10 + "c" * 11 + "nn"), ("IT", "a" + "n" * 10 + "c" * 12),
                ("NL", "aaaa" + "n" * 10), ("ES", "n" * 20), ("PL", "n" * 24), ("CZ", "n" * 20), ("HU", "n" * 24),
                ("FI", "n" * 14), ("DK", "n" * 14), ("NO", "n" * 11), ("SE", "n" * 20), ("CH", "n" * 5 + "c" * 12),
                ("AT", "n" * 16), ("PT", "n" * 21), ("BE", "n" * 12), ("GR", "n" * 7 + "c" * 16), ("HR", "n" * 17),
                ("IS", "n" * 22), ("EE", "n" * 16), ("SK", "n" * 20), ("TR", "n" * 5 + "0" + "c" * 16)]  # fmt: skip

# Templates written for this set. Slots: {name} full name, {first}, {last}, {name2} another
# person, {city}, {street}, {phone}, {email}, {card}, {iban}, {ssn}, {ip}.
TEMPLATES = [
    "Please update the contact person for this account to {name}, phone {phone}.",
    "Hi, this is {first}. I moved to {street}, {city} and my parcels still go to the old address.",
    "{name} called twice about the refund for the headphones; call back on {phone}.",
    "Send the signed lease to {email} and a paper copy to {street}, {city}.",
    "Our new hire {name} starts Monday in the {city} office; payroll needs IBAN {iban}.",
    "Dear {first}, your appointment is confirmed for Tuesday at 9:30. Reply to this message to cancel.",
    "I'd like to dispute a charge on card {card}; the merchant is in {city} and I was never there.",
    "Customer {name} ({email}) asks why her invoice shows two delivery fees.",
    "The package for {name} was returned: nobody at {street} signed for it.",
    "Can {first} {last} from accounting approve the travel costs for the {city} trip?",
    "My neighbour {name} gets my mail all the time, we both live on {street}.",
    "Ticket 4471: the login from {ip} was flagged, the account belongs to {name}.",
    "Transfer the deposit to {iban} (account holder {name}) by Friday, please.",
    "{first}: are you still at the {city} site?\n{name2}: yes, until Thursday\n{first}: ok, call me at {phone}",
    "Hello {first}, thanks for your order. We will ship it to {street}, {city} within three days.",
    "The insurance claim of {name} was approved; the payment goes to {iban}.",
    "Please remove {email} from the newsletter, {first} asked us by phone.",
    "Emergency contact: {name}, {phone} (sister).",
    "I am {name} and I need a copy of my tax form; my SSN is {ssn}.",
    "Forward the meeting notes to {name2} and {name}, they missed the call from {city}.",
    "The driver is waiting outside {street}; {first} is not answering {phone}.",
    "Background check for {name}: SSN {ssn}, previous address {street}, {city}.",
    "Refund of 49.90 EUR to card {card} for {name}, order 77120.",
    "{name} wrote from {email} that the replacement part never arrived in {city}.",
    "Reminder: {first}'s birthday is on Saturday, the party is at {street}.",
    "The server {ip} is registered to {name} in our asset list; is it still in use?",
    "Could you book a taxi for {name} from {street} to the airport at 6 am?",
    "Attn {name}: the documents for the {city} branch are ready for signature.",
    "We were unable to charge card {card}. Please ask {first} to update it or pay to {iban}.",
    "New lead: {name}, {city}, {email}, interested in the annual plan.",
    "Hi {first}, I'm covering for {name2} this week. Can you send me the file?",
    "The tenant at {street}, {city} is {name}; her phone is {phone}.",
    "Log: user {email} signed in from {ip} at 02:14 and changed the payout IBAN to {iban}.",
    "Our courier says the address {street} does not exist in {city}. Can {first} confirm it?",
    "Parent contact for the school trip: {name}, {phone}, {email}.",
    "{first} {last} has asked to close her savings account and move the balance to {iban}.",
    "Please note: {name} no longer works here. Send invoices to {name2} instead.",
    "The wedding invitations go to {name} at {street}, {city}, and to {name2}.",
    "I was born in {city} and moved away as a child; my name then was {name}.",
    "Hello, my card {card} was declined at your {city} store although the balance is fine. {name}",
]


def _load(mimesis: Path) -> dict[str, dict]:
    base = mimesis / "mimesis" / "datasets"
    out = {}
    for loc in LOCALES:
        person = json.loads((base / loc / "person.json").read_text())
        address = json.loads((base / loc / "address.json").read_text())
        out[loc] = {"person": person, "address": address}
    return out


def _words(value: str) -> list[str]:
    return value.replace("-", " ").replace(",", " ").split()


def _withheld(value: str, known: frozenset[str]) -> bool:
    """True when no word of `value` is in a detector gazetteer (case-insensitive)."""
    return all(w.strip(".'").lower() not in known for w in _words(value))


def _fill(fmt: str, rng: random.Random) -> str:
    return "".join(str(rng.randint(0, 9)) if c == "#" else c for c in fmt)


def _ascii(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and (c.isalnum() or c in ".-"))


class Pools:
    """Per-locale values with no word in any gazetteer."""

    def __init__(self, data: dict[str, dict], known: frozenset[str]) -> None:
        self.first: dict[str, dict[str, list[str]]] = {}
        self.last: dict[str, dict[str, list[str]]] = {}
        self.city: dict[str, list[str]] = {}
        self.street: dict[str, list[tuple[str, str]]] = {}
        self.address_fmt: dict[str, str] = {}
        self.phone_fmt: dict[str, list[str]] = {}
        for loc, d in data.items():
            names, surnames = d["person"]["names"], d["person"]["surnames"]
            if isinstance(surnames, list):
                surnames = {"male": surnames, "female": surnames}
            ok = lambda v: v[:1].isupper() and all(w[:1].isupper() for w in _words(v)) and _withheld(v, known)  # noqa: E731
            self.first[loc] = {g: [n for n in names[g] if ok(n)] for g in ("male", "female")}
            self.last[loc] = {g: [n for n in surnames[g] if ok(n)] for g in ("male", "female")}
            self.city[loc] = [c for c in d["address"]["city"] if ok(c)]
            street = d["address"]["street"]
            sfx = street.get("suffix") or [""]
            self.street[loc] = [(n, s) for n in street["name"] for s in sfx[:3] if ok(n) and _withheld(s, known)]
            self.address_fmt[loc] = d["address"].get("address_fmt") or "{st_num} {st_name} {st_sfx}"
            self.phone_fmt[loc] = d["person"]["telephone_fmt"]

    def usable(self, loc: str) -> bool:
        return all(self.first[loc][g] and self.last[loc][g] for g in ("male", "female")) and bool(
            self.city[loc] and self.street[loc]
        )


def _street(pools: Pools, loc: str, rng: random.Random) -> str:
    name, sfx = rng.choice(pools.street[loc])
    fmt = pools.address_fmt[loc]
    line = fmt.replace("{st_num}", str(rng.randint(1, 240))).replace("{st_name}", name).replace("{st_sfx}", sfx)
    return " ".join(line.split()).strip(" ,")


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1)) + "?"
    number = luhn_complete(body)
    style = rng.randrange(3)
    if style == 0:
        return number
    groups = (
        [number[i : i + 4] for i in range(0, len(number), 4)]
        if length == 16
        else [number[:4], number[4:10], number[10:]]
    )
    return (" " if style == 1 else "-").join(groups)


def _iban(rng: random.Random) -> str:
    country, layout = rng.choice(IBAN_LAYOUTS)
    pick = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0": "0"}
    bban = "".join(rng.choice(pick[c]) for c in layout)
    iban = iban_complete(country + "??" + bban)
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return (
            "2001:db8:"
            + ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(3))
            + "::"
            + f"{rng.randint(1, 0xFFFF):x}"
        )
    first = rng.choice([10, 172, 192, 81, 95, 145, 185, 203, 62, 88])
    return ".".join(str(x) for x in (first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)))


def _person(pools: Pools, loc: str, rng: random.Random) -> tuple[str, str]:
    g = rng.choice(("male", "female"))
    return rng.choice(pools.first[loc][g]), rng.choice(pools.last[loc][g])


def make(pools: Pools, n: int, rng: random.Random) -> list[dict]:
    locales = [loc for loc in LOCALES if pools.usable(loc)]
    weights = [LOCALES[loc] for loc in locales]
    records = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        loc = rng.choices(locales, weights)[0]
        first, last = _person(pools, loc, rng)
        first2, last2 = _person(pools, rng.choices(locales, weights)[0], rng)
        email_local = rng.choice(
            [f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}", f"{last}.{first[0]}"]
        )
        email = (_ascii(email_local).lower().strip(".") or f"user{i}") + "@" + rng.choice(DOMAINS)
        values = {
            "name": ("PERSON", f"{first} {last}"),
            "first": ("PERSON", first),
            "last": ("PERSON", last),
            "name2": ("PERSON", f"{first2} {last2}"),
            "city": ("GPE", rng.choice(pools.city[loc])),
            "street": ("STREET_ADDRESS", _street(pools, loc, rng)),
            "phone": ("PHONE_NUMBER", _fill(rng.choice(pools.phone_fmt[loc]), rng)),
            "email": ("EMAIL_ADDRESS", email),
            "card": ("CREDIT_CARD", _card(rng)),
            "iban": ("IBAN_CODE", _iban(rng)),
            "ssn": ("US_SSN", _ssn(rng)),
            "ip": ("IP_ADDRESS", _ip(rng)),
        }
        marked = template
        for slot, (kind, value) in values.items():
            marked = marked.replace("{" + slot + "}", f"[[{kind}:{value}]]")
        rec = from_markup(marked, f"withheld:{loc}")
        records.append(rec)
    return records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mimesis", type=Path, required=True, help="a directory holding the mimesis package")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--out", default="untuned_withheld.jsonl")
    args = ap.parse_args()
    from guardrails.pii.gazetteer import country_names, person_names

    known = frozenset(
        w.lower() for v in (*person_names(), *country_names()) for w in _words(v)
    )  # every word any gazetteer holds
    pools = Pools(_load(args.mimesis), known)
    records = make(pools, args.n, random.Random(args.seed))
    path = write_jsonl(args.out, records)
    print(f"{path.name}: {len(records)} sentences, {sum(len(r['spans']) for r in records)} labeled values")


if __name__ == "__main__":
    main()
