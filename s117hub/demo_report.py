"""What ``s117hub demo`` prints once seeded: where things are, how to log in, what to try.

Read back through the public API with the operator's token (so those reads are audited like
anyone's). Register ids and invented names only: no NHS number is printed.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from .demo_partners import DemoPartners
from .demo_people import (
    FOLLOW,
    PEOPLE,
    TRUST_HL7,
    UNMAPPED_HL7_CODE,
    UNMAPPED_HL7_CODE_MEANS,
)
from .demo_player import ScenarioPlayer, Tokens

# Names of the shell variables the printed `export` lines set (not secrets themselves).
TOKEN_VARIABLE = "S117HUB_DEMO_TOKEN"  # noqa: S105
AUDITOR_VARIABLE = "S117HUB_DEMO_AUDITOR_TOKEN"


def _total(player: ScenarioPlayer, path: str, **params: Any) -> int:
    return int(player.get(path, limit=1, **params)["total"])


def _counts(player: ScenarioPlayer) -> list[str]:
    entitlements = {s: _total(player, "/api/v1/entitlements", status=s)
                    for s in ("active", "pending", "ended")}
    exceptions = Counter(e["kind"] for e in player.get(
        "/api/v1/exceptions", status="open", limit=500)["items"])
    deliveries = {s: _total(player, "/api/v1/deliveries", status=s)
                  for s in ("delivered", "retrying", "failed", "pending")}
    messages = {s: _total(player, "/api/v1/messages", status=s)
                for s in ("applied", "failed")}
    return [
        f"  people {_total(player, '/api/v1/people')}; entitlements "
        + ", ".join(f"{s} {n}" for s, n in entitlements.items()),
        "  open exceptions " + ", ".join(f"{k} {n}" for k, n in sorted(exceptions.items())),
        "  messages " + ", ".join(f"{s} {n}" for s, n in messages.items())
        + "; deliveries " + ", ".join(f"{s} {n}" for s, n in deliveries.items() if n),
    ]


def _first_id(player: ScenarioPlayer, path: str, **params: Any) -> str | None:
    items = player.get(path, limit=1, **params)["items"]
    return str(items[0]["id"]) if items else None


def _replay_lines(curl: str, api: str, message_id: str) -> list[str]:
    return [
        f"   4. Message {message_id} was answered AE (local code {UNMAPPED_HL7_CODE} is not "
        f"in {TRUST_HL7}'s code map). Add \"{UNMAPPED_HL7_CODE}\": "
        f"\"{UNMAPPED_HL7_CODE_MEANS}\" to code_map",
        f"      (GET then PUT {api}/api/v1/sources/{TRUST_HL7}), then replay it:",
        f"        {curl} -X POST '{api}/api/v1/messages/{message_id}/replay'",
        f"        (or the Replay button at {api}/ui/messages/{message_id})"]


def banner(player: ScenarioPlayer, *, api: str, mllp: str, directory: Path,
           partners: DemoPartners, tokens: Tokens, trust_back_at: float | None) -> str:
    ids = {key: player.register_id(key) or "(not on the register)" for key in PEOPLE}
    follow = ids[FOLLOW]
    ae_message = _first_id(player, "/api/v1/messages", source=TRUST_HL7, status="failed")
    refused = _first_id(player, "/api/v1/deliveries", status="failed")
    conflict = player.get("/api/v1/exceptions", status="open", kind="source-conflict",
                          person_id=ids["sam"], limit=1)["items"]
    conflict_id = conflict[0]["id"] if conflict else None
    back = (f" (down until {datetime.fromtimestamp(trust_back_at):%H:%M:%S})"
            if trust_back_at else "")
    curl = f'curl -s -H "Authorization: Bearer ${TOKEN_VARIABLE}"'
    lines = [
        "",
        "S117 Hub demo: a synthetic partnership, 16 weeks played through the real paths",
        "",
        f"  console   {api}/ui/",
        f"  API       {api}/api/v1/  (OpenAPI {api}/openapi.json, with the token)",
        f"  FHIR      {api}/fhir/r4    MLLP {mllp}",
        f"  data      {directory}/  (SQLite {directory}/s117hub.sqlite3, partnership config "
        f"{directory}/hub.json; recreated each run unless --keep)",
        "",
        "  Log in with this token (register owner + integration engineer):",
        f"    export {TOKEN_VARIABLE}={tokens.operator}",
        "  Read-only auditor token (register and audit log):",
        f"    export {AUDITOR_VARIABLE}={tokens.auditor}",
        "",
        "  Partner systems (GET shows what each has received):",
        f"    Westmere County Council      {partners.council_west.base_url}/  "
        "(sends REST events; receives status documents)",
        f"    Eastbrook City Council       {partners.council_east.base_url}/  "
        "(sends CSV exports; receives status documents)",
        f"    Riverside trust FHIR server  {partners.trust_fhir.base_url}/  "
        f"(sends FHIR Bundles; receives EpisodeOfCare){back}",
        "    Northgate trust EPR          sends HL7 v2 ADT over MLLP",
        "",
        "  The register now:",
        *_counts(player),
        "",
        "  People (register id, story):",
        *[f"    {p.name:<20} {ids[key]}  {p.story}" for key, p in PEOPLE.items()],
        "",
        "  Try this in the console (log in with the token above), or with curl:",
        f"   1. Follow {PEOPLE[FOLLOW].name} from HL7 message to register to delivery:",
        f"        console: {api}/ui/messages?person_id={follow}  (open the A03, then "
        "'register record', then 'deliveries to partners')",
        f"        {curl} '{api}/api/v1/messages?person_id={follow}'",
        f"        {curl} '{api}/api/v1/people/{follow}'       (entitlement and explain)",
        f"        {curl} '{api}/api/v1/deliveries?person_id={follow}'",
        *([f"   2. Resolve the source conflict on {PEOPLE['sam'].name} (trust s3, council "
           "s2):",
           f"        console: {api}/ui/exceptions/{conflict_id}",
           f"        {curl} -X POST -H 'Content-Type: application/json' "
           f"'{api}/api/v1/exceptions/{conflict_id}/resolve' -d '{{\"decision\": "
           f"\"accept-source:{TRUST_HL7}\", \"reason\": \"the ward record shows s3\"}}'"]
          if conflict else [f"   2. (The source conflict on {PEOPLE['sam'].name} has been "
                            "resolved already.)"]),
        f"   3. The missed entitlement: {PEOPLE['jordan'].name}, discharged after s3, "
        "never confirmed by Eastbrook:",
        f"        console: {api}/ui/exceptions?kind=missed-entitlement",
        f"        {curl} '{api}/api/v1/exceptions?status=open&kind=missed-entitlement'",
        *(_replay_lines(curl, api, ae_message) if ae_message else
          ["   4. (The AE message has been replayed already.)"]),
        *([f"   5. Westmere refused delivery {refused} (person not on its case list yet); "
           "it has added them now:",
           f"        {curl} -X POST '{api}/api/v1/deliveries/{refused}/retry'",
           f"        (or Retry now at {api}/ui/deliveries/{refused})"] if refused
          else ["   5. (No failed delivery left to retry.)"]),
        ("   6. The trust's FHIR server is down for a while: watch its deliveries retry, "
         "then go:" if trust_back_at else
         "   6. The trust's FHIR server was down for a while: see its deliveries' retries:"),
        f"        console: {api}/ui/flow  and  {api}/ui/deliveries",
        f"        {curl} '{api}/api/v1/deliveries?status=retrying'   and   "
        f"{curl} '{api}/api/v1/sla'",
        f"   7. Disputes, overdue reviews, the register itself (console: {api}/ui/disputes, "
        f"{api}/ui/board):",
        f"        {curl} '{api}/api/v1/disputes'",
        f"        {curl} '{api}/api/v1/entitlements?overdue=true'",
        f"   8. As the auditor: curl -s -H \"Authorization: Bearer ${AUDITOR_VARIABLE}\" "
        f"'{api}/api/v1/audit?limit=20'",
        "",
    ]
    return "\n".join(lines)
