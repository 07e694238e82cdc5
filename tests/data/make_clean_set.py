"""Regenerates clean_prompts.jsonl: prompts with no personal data that look risky to a PII
detector (code, stack traces, UUIDs, versions, order numbers, product names, release dates)."""

import json
import random
import uuid
from pathlib import Path

rng = random.Random(11)
T = [
    "Fix this Python: def add(a, b): return a - b  # returns wrong result for 3 and 4",
    "Traceback (most recent call last): File \"/srv/app/worker.py\", line {n}, in run KeyError: 'order_id'",
    "Why does request {uuid} fail with HTTP 502 behind the load balancer?",
    "Upgrade the service from version {v1} to {v2} and list breaking changes.",
    "Order #{order} was shipped in two parcels; how do I merge the tracking numbers?",
    "Compare the Galaxy S24 and the Pixel 9 for battery life.",
    "Our release is planned for Q3 2025, with a beta in Q2.",
    "Summarise the changelog of release {v1} in three bullet points.",
    "What does error code E{n} mean in the payment SDK?",
    "Convert 1,250.75 EUR to USD at a rate of 1.08.",
    "Write a SQL query that counts orders per day in March 2024.",
    "The build {n} failed at step 7 of 12: npm ERR! code ERESOLVE",
    "Explain the difference between TCP port 443 and port 8443 for the admin console.",
    "Sort the list [{n}, 17, 4, 99, 23] in descending order.",
    "Docker image sha256:{hex} is 1.2 GB; how can I make it smaller?",
    "Set the Kubernetes memory limit to 512Mi and the CPU request to 250m.",
    "Translate 'the meeting is moved to Tuesday at 10:30' into French.",
    "Is ISO 8601 date 2024-11-05T14:30:00Z in UTC?",
    "Our SKU {sku} is out of stock; suggest a substitute product.",
    "Calculate the compound interest on 10,000 at 4.5% for 7 years.",
    "Ticket JIRA-{n} says the cache hit rate dropped to 62% after the deploy.",
    "Describe the architecture of Apache Kafka in 5 sentences.",
    "The regex ^[A-Z]{{3}}-\\d{{4}}$ does not match ABC-12345, why?",
    "Commit {hex7} introduced a regression in the parser.",
    "What is the time complexity of heapq.nsmallest(10, data)?",
    "Generate unit tests for the function parse_version('1.2.3-rc.1').",
    "Shipment batch {order} contains 48 pallets of model X200 printers.",
    "Explain the CVSS score 9.8 for the OpenSSL vulnerability.",
    "The Terraform plan shows 3 to add, 1 to change, 0 to destroy.",
    "Our Q4 OKRs: reduce p99 latency below 250 ms and raise NPS to 45.",
]


def fill(t: str) -> str:
    return t.format(
        n=rng.randint(10, 99999),
        uuid=uuid.UUID(int=rng.getrandbits(128)),
        v1=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        v2=f"{rng.randint(10, 12)}.{rng.randint(0, 5)}.0",
        order=rng.randint(10**7, 10**9),
        hex=uuid.UUID(int=rng.getrandbits(128)).hex,
        hex7=uuid.UUID(int=rng.getrandbits(128)).hex[:7],
        sku=f"SKU-{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGH')}",
    )


out = Path(__file__).with_name("clean_prompts.jsonl")
with out.open("w") as f:
    for i in range(150):
        f.write(json.dumps({"text": fill(T[i % len(T)])}) + "\n")
print(f"wrote 150 prompts to {out}")
