"""The Salesforce REST API stand-in: the wire protocol simple-salesforce speaks, over the `World`'s people.

What it serves (paths under `/services/data/vNN.0` unless absolute):

- `POST /services/oauth2/token` (client credentials with Basic auth, or the password grant) and
  `POST /services/Soap/u/NN.0` (username + password + security token); a fixed session id also works.
- `GET /services/data` (versions), `/limits`, `/sobjects`, `/sobjects/{Obj}/describe`.
- `GET /query?q=` and `/queryAll?q=` with a small SOQL dialect (see `parse_soql`), pages of at most
  2,000 records (`Sforce-Query-Options: batchSize=` 200..2000) linked by `nextRecordsUrl`. `query`
  hides `IsDeleted` rows, `queryAll` returns them.
- sObject Collections: `POST`/`PATCH /composite/sobjects` (create/update) and
  `PATCH /composite/sobjects/{Obj}/{ExternalIdField}` (upsert), at most 200 records, `allOrNone`,
  per-record results; `reject()` makes chosen records fail validation.

Every `/services/data` response carries `Sforce-Limit-Info: api-usage=USED/MAX`; past `api_limit` calls
the API answers 403 `REQUEST_LIMIT_EXCEEDED`, as a real org does when its daily quota is used up. Errors
are Salesforce's lists of `{"errorCode", "message"}`.

Data is seeded deterministically from `build_world(seed)`: a Lead for every person at lead stage or later,
converted (Contact, Account, Opportunity) when they became a customer or asked for a quote, Users (sales
reps), Campaigns and CampaignMembers, LeadHistory / OpportunityFieldHistory for tracked fields,
`HasOptedOutOfEmail` / `DoNotCall` from opt-outs a sales rep recorded (consent changes with system
"salesforce"), and some deleted test leads. Seeded times are the world's own (January 2024); the
`SandboxClock` starts a day after the world ends and stamps every later write, a millisecond apart.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
import xml.dom.minidom
import xml.parsers.expat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cdp_assets.sandbox.clock import SandboxClock, truncate_ms
from cdp_assets.sandbox.http import Fault, Request, Response, SandboxApp
from cdp_assets.sandbox.world import WORLD_END, Company, Person, World, build_world

API_VERSIONS = ("57.0", "58.0", "59.0", "60.0", "61.0", "62.0")
DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
COLLECTION_LIMIT = 200
DEFAULT_API_LIMIT = 1_000_000

# Credentials the stand-in accepts. They are not secrets: they only open the local stand-in.
SANDBOX_DOMAIN = "cdp-sandbox.my"
SANDBOX_INSTANCE_URL = "https://cdp-sandbox.my.salesforce.com"
SANDBOX_CONSUMER_KEY = "sandbox-consumer-key"
SANDBOX_CONSUMER_SECRET = "sandbox-consumer-secret"
SANDBOX_SESSION_ID = "00D5g000004CDPSBX!static-session"
SANDBOX_USERNAME = "integration@cdp-sandbox.example"
SANDBOX_PASSWORD = "sandbox-password"
SANDBOX_SECURITY_TOKEN = "sandboxtoken"
ORG_ID = "00D5g000004CDPSBXA"

# -------------------------------------------------------------------------------------- values and ids

_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: key prefix, pod, a base-62 counter, and Salesforce's case-checksum suffix."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    return id18(f"{prefix}5g0{digits.rjust(9, '0')}")


def id18(id15: str) -> str:
    """The case-insensitive 18-character form of a 15-character id: one checksum letter per 5 characters."""
    suffix = ""
    for chunk in range(3):
        flags = sum(1 << i for i, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if char.isupper())
        suffix += _CHECKSUM_CHARS[flags]
    return id15 + suffix


def sf_datetime(moment: datetime) -> str:
    """Salesforce's datetime format: `2024-01-05T10:00:00.000+0000` (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$")


def parse_sf_datetime(text: str) -> datetime:
    """Any of the datetime spellings Salesforce reads or writes, as an aware UTC datetime."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else f"{zone[:3]}:{zone[-2:]}"
    micros = (fraction or ".0")[1:].ljust(6, "0")
    return datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}").astimezone(UTC)


# ------------------------------------------------------------------------------------ object metadata

_TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url", "id", "reference"}
)
_NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
_COMPOUND_TYPES = frozenset({"address", "location"})
_HISTORY_DATA_TYPES = {
    "string": "Text",
    "textarea": "TextArea",
    "picklist": "Picklist",
    "boolean": "Boolean",
    "reference": "EntityId",
    "currency": "Currency",
    "date": "Date",
    "datetime": "DateTime",
    "double": "Double",
    "int": "Integer",
    "email": "Email",
    "phone": "Phone",
    "percent": "Percent",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class FieldDef:
    """One field of an sObject, as `describe` shows it."""

    name: str
    type: str
    length: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    compound_field_name: str | None = None
    reference_to: tuple[str, ...] = ()
    picklist: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    defaulted_on_create: bool = False
    label: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", self.name.removesuffix("__c")),
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "custom": self.custom,
            "externalId": self.external_id,
            "idLookup": self.external_id or self.type == "id" or self.name == "Email",
            "unique": self.unique,
            "filterable": self.type not in _COMPOUND_TYPES,
            "sortable": self.type not in _COMPOUND_TYPES,
            "compoundFieldName": self.compound_field_name,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name[:-2] if self.type == "reference" and self.name.endswith("Id") else None,
            "defaultedOnCreate": self.defaulted_on_create,
            "calculated": False,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False} for v in self.picklist],
        }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "anyType": "xsd:anyType",
    "address": "urn:address",
    "location": "urn:location",
}


def _f(name: str, type_: str, **kw: Any) -> FieldDef:
    if type_ in ("string", "textarea", "picklist", "email", "phone", "url") and "length" not in kw:
        kw["length"] = 255 if type_ != "textarea" else 32000
    if type_ in ("id", "reference"):
        kw.setdefault("length", 18)
    return FieldDef(name, type_, custom=name.endswith("__c"), **kw)


def _readonly(name: str, type_: str, **kw: Any) -> FieldDef:
    return _f(name, type_, updateable=False, createable=False, **kw)


def _system_fields(modstamp: bool = True) -> list[FieldDef]:
    fields = [
        _readonly("Id", "id", nillable=False),
        _readonly("IsDeleted", "boolean", nillable=False, defaulted_on_create=True),
        _readonly("CreatedDate", "datetime", nillable=False, defaulted_on_create=True),
        _readonly("CreatedById", "reference", nillable=False, reference_to=("User",), defaulted_on_create=True),
    ]
    if modstamp:
        fields += [
            _readonly("LastModifiedDate", "datetime", nillable=False, defaulted_on_create=True),
            _readonly("LastModifiedById", "reference", nillable=False, reference_to=("User",)),
            _readonly("SystemModstamp", "datetime", nillable=False, defaulted_on_create=True),
        ]
    return fields


def _address(prefix: str) -> list[FieldDef]:
    """An address's component fields plus the read-only compound field that bundles them."""
    compound = f"{prefix}Address"
    parts = [
        _f(f"{prefix}Street", "textarea", length=255),
        _f(f"{prefix}City", "string", length=40),
        _f(f"{prefix}State", "string", length=80),
        _f(f"{prefix}PostalCode", "string", length=20),
        _f(f"{prefix}Country", "string", length=80),
        _f(f"{prefix}Latitude", "double", precision=18, scale=15),
        _f(f"{prefix}Longitude", "double", precision=18, scale=15),
    ]
    for part in parts:
        part.compound_field_name = compound
    return [*parts, _readonly(compound, "address")]


LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
OPPORTUNITY_STAGES = (
    "Prospecting",
    "Qualification",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
_STAGE_PROBABILITY = {"Prospecting": 10, "Qualification": 20, "Proposal/Price Quote": 60,
                      "Negotiation/Review": 80, "Closed Won": 100, "Closed Lost": 0}  # fmt: skip
LIFECYCLE_STAGES = ("lead", "signed_up", "customer")
PLANS = ("free", "pro", "enterprise")


def _person_fields() -> list[FieldDef]:
    return [
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, updateable=False, createable=False),
        _f("Title", "string", length=128),
        _f("Email", "email", length=80),
        _f("Phone", "phone", length=40),
        _f("LeadSource", "picklist", picklist=("Web", "Product Signup", "Event", "Partner")),
        _f("OwnerId", "reference", reference_to=("User",), defaulted_on_create=True),
        _f("HasOptedOutOfEmail", "boolean", nillable=False, defaulted_on_create=True),
        _f("DoNotCall", "boolean", nillable=False, defaulted_on_create=True),
        _readonly("MasterRecordId", "reference"),
        _f("Person_Id__c", "string", length=40, external_id=True, unique=True),
        _f("Product_User_Id__c", "string", length=40, external_id=True),
        _f("Lifecycle_Stage__c", "picklist", picklist=LIFECYCLE_STAGES),
    ]


def _schemas() -> dict[str, tuple[str, list[FieldDef]]]:
    """Key prefix and fields of every object the stand-in serves (a trimmed but faithful subset)."""
    return {
        "User": ("005", [*_system_fields(),
            _f("Username", "string", length=80, nillable=False, unique=True),
            _f("FirstName", "string", length=40), _f("LastName", "string", length=80, nillable=False),
            _f("Name", "string", length=121, updateable=False, createable=False),
            _f("Email", "email", length=128, nillable=False), _f("Title", "string", length=80),
            _f("Department", "string", length=80), _f("IsActive", "boolean", nillable=False),
            _f("UserType", "picklist", picklist=("Standard", "AutomatedProcess")),
            _f("Sales_Region__c", "picklist", picklist=("AMER", "EMEA", "APAC"))]),
        "Account": ("001", [*_system_fields(),
            _f("Name", "string", nillable=False), _f("Type", "picklist", picklist=("Prospect", "Customer")),
            *_address("Billing"), _f("Phone", "phone", length=40), _f("Website", "url"),
            _f("Industry", "picklist"), _f("NumberOfEmployees", "int"),
            _f("OwnerId", "reference", reference_to=("User",), defaulted_on_create=True),
            _f("Plan__c", "picklist", picklist=PLANS), _f("Domain__c", "string", external_id=True, unique=True),
            _f("Customer_Since__c", "date")]),
        "Lead": ("00Q", [*_system_fields(), *_person_fields(),
            _f("Company", "string", nillable=False), *_address(""), _f("Website", "url"),
            _f("Status", "picklist", picklist=LEAD_STATUSES, nillable=False, defaulted_on_create=True),
            _f("Industry", "picklist"), _f("Rating", "picklist", picklist=("Hot", "Warm", "Cold")),
            _f("NumberOfEmployees", "int"),
            _readonly("IsConverted", "boolean", nillable=False, defaulted_on_create=True),
            _readonly("ConvertedDate", "date"),
            _readonly("ConvertedAccountId", "reference", reference_to=("Account",)),
            _readonly("ConvertedContactId", "reference", reference_to=("Contact",)),
            _readonly("ConvertedOpportunityId", "reference", reference_to=("Opportunity",)),
            _f("Signed_Up_At__c", "datetime")]),
        "Contact": ("003", [*_system_fields(), *_person_fields(),
            _f("AccountId", "reference", reference_to=("Account",)), *_address("Mailing"),
            _f("Plan__c", "picklist", picklist=PLANS)]),
        "Opportunity": ("006", [*_system_fields(),
            _f("AccountId", "reference", reference_to=("Account",)), _f("Name", "string", length=120, nillable=False),
            _f("StageName", "picklist", picklist=OPPORTUNITY_STAGES, nillable=False),
            _f("Amount", "currency", precision=18, scale=2), _f("Probability", "percent", precision=3),
            _f("CloseDate", "date", nillable=False),
            _f("Type", "picklist", picklist=("New Business", "Existing Business")),
            _f("LeadSource", "picklist", picklist=("Web", "Product Signup", "Event", "Partner")),
            _readonly("IsClosed", "boolean", nillable=False, defaulted_on_create=True),
            _readonly("IsWon", "boolean", nillable=False, defaulted_on_create=True),
            _f("CampaignId", "reference", reference_to=("Campaign",)),
            _f("OwnerId", "reference", reference_to=("User",), defaulted_on_create=True),
            _f("Plan__c", "picklist", picklist=PLANS), _f("Seats__c", "double", precision=18)]),
        "Campaign": ("701", [*_system_fields(),
            _f("Name", "string", length=80, nillable=False),
            _f("Type", "picklist", picklist=("Webinar", "Email", "Conference", "Advertisement")),
            _f("Status", "picklist", picklist=("Planned", "In Progress", "Completed")),
            _f("StartDate", "date"), _f("EndDate", "date"), _f("IsActive", "boolean", nillable=False),
            _f("BudgetedCost", "currency", precision=18, scale=2),
            _f("OwnerId", "reference", reference_to=("User",), defaulted_on_create=True),
            _f("Channel__c", "picklist", picklist=("online", "offline"))]),
        "CampaignMember": ("00v", [*_system_fields(),
            _f("CampaignId", "reference", reference_to=("Campaign",), nillable=False, updateable=False),
            _f("LeadId", "reference", reference_to=("Lead",), updateable=False),
            _f("ContactId", "reference", reference_to=("Contact",), updateable=False),
            _f("Status", "picklist", picklist=("Sent", "Responded")),
            _readonly("HasResponded", "boolean", nillable=False, defaulted_on_create=True),
            _f("FirstRespondedDate", "date"), _readonly("Email", "email", length=80)]),
        "LeadHistory": ("017", [*_system_fields(modstamp=False),
            _readonly("LeadId", "reference", reference_to=("Lead",), nillable=False),
            _readonly("Field", "picklist"), _readonly("DataType", "picklist"),
            _readonly("OldValue", "anyType"), _readonly("NewValue", "anyType")]),
        "OpportunityFieldHistory": ("008", [*_system_fields(modstamp=False),
            _readonly("OpportunityId", "reference", reference_to=("Opportunity",), nillable=False),
            _readonly("Field", "picklist"), _readonly("DataType", "picklist"),
            _readonly("OldValue", "anyType"), _readonly("NewValue", "anyType")]),
    }  # fmt: skip


# Fields with history tracking switched on: a change to one of them writes a history row.
_TRACKED: dict[str, tuple[str, str, frozenset[str]]] = {
    "Lead": ("LeadHistory", "LeadId", frozenset({
        "Status", "OwnerId", "Email", "HasOptedOutOfEmail", "DoNotCall", "Lifecycle_Stage__c", "Company", "Title",
    })),
    "Opportunity": ("OpportunityFieldHistory", "OpportunityId", frozenset({
        "StageName", "Amount", "CloseDate", "OwnerId", "Probability",
    })),
}  # fmt: skip
# Fields a create must carry (beyond what has a default).
_REQUIRED = {
    "Lead": ("LastName", "Company"),
    "Contact": ("LastName",),
    "Account": ("Name",),
    "Opportunity": ("Name", "StageName", "CloseDate"),
    "Campaign": ("Name",),
    "CampaignMember": ("CampaignId",),
    "User": ("Username", "LastName", "Email"),
}


@dataclass
class SObjectType:
    """One object's metadata and records (records keep canonical field names and Python values)."""

    name: str
    key_prefix: str
    fields: dict[str, FieldDef]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def field(self, name: str) -> FieldDef | None:
        found = self.fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((f for f in self.fields.values() if f.name.lower() == lowered), None)

    def new_id(self) -> str:
        return salesforce_id(self.key_prefix, next(self.counter))

    def describe(self) -> dict[str, Any]:
        history = self.name.endswith("History")
        return {
            "name": self.name,
            "label": self.name,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "queryable": True,
            "createable": not history,
            "updateable": not history,
            "deletable": not history,
            "fields": [f.describe() for f in self.fields.values()],
            "urls": {"sobject": f"/services/data/v59.0/sobjects/{self.name}"},
        }


# ------------------------------------------------------------------------------------------- SOQL


class SoqlError(ValueError):
    """A query Salesforce would refuse, with its error code (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | boolean | null | datetime | date
    value: Any


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = != > >= < <= IN NOT IN LIKE
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class SoqlQuery:
    fields: tuple[str, ...]
    sobject: str
    where: tuple[Condition, ...] = ()
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
     |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
     |(?P<date>\d{4}-\d{2}-\d{2})
     |(?P<number>-?\d+(?:\.\d+)?)
     |(?P<op>!=|<>|>=|<=|=|<|>)
     |(?P<punct>[(),])
     |(?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keyword sequence if it comes next."""
        upcoming = self.tokens[self.pos : self.pos + len(words)]
        if len(upcoming) == len(words) and all(
            k == "word" and v.upper() == w for (k, v), w in zip(upcoming, words, strict=True)
        ):
            self.pos += len(words)
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise SoqlError("MALFORMED_QUERY", f"expected {word} near {self._here()}")

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise SoqlError("MALFORMED_QUERY", f"expected {value or kind} near {self._here()}")
        self.pos += 1
        return token[1]

    def _here(self) -> str:
        token = self.peek()
        return repr(token[1]) if token else "end of query"


_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "ORDER", "BY", "LIMIT", "ASC", "DESC", "NOT", "IN"})


def parse_soql(text: str) -> SoqlQuery:
    """`SELECT f1, f2 FROM Obj [WHERE c1 AND c2 ...] [ORDER BY f [ASC|DESC]] [LIMIT n]`.

    Conditions compare a field with a literal (`= != <> > >= < <=`), or take `IN (...)`, `NOT IN (...)`
    or `LIKE 'pattern'`. Literals: 'quoted strings', numbers, TRUE/FALSE, NULL, unquoted ISO datetimes
    (`2024-01-01T00:00:00Z`, `...000+0000`) and dates. OR, subqueries and functions are refused.
    """
    parser = _Parser(text)
    parser.expect_keyword("SELECT")
    fields = [parser.take("word")]
    while parser.peek() == ("punct", ","):
        parser.pos += 1
        fields.append(parser.take("word"))
    parser.expect_keyword("FROM")
    sobject = parser.take("word")
    where: list[Condition] = []
    if parser.keyword("WHERE"):
        where.append(_condition(parser))
        while parser.keyword("AND"):
            where.append(_condition(parser))
    order_by, descending = None, False
    if parser.keyword("ORDER", "BY"):
        order_by = parser.take("word")
        if parser.keyword("DESC"):
            descending = True
        else:
            parser.keyword("ASC")
    limit = None
    if parser.keyword("LIMIT"):
        limit = int(parser.take("number"))
    if parser.peek() is not None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token {parser._here()} (the sandbox supports AND only)")
    for name in fields:
        if name.upper() in _KEYWORDS:
            raise SoqlError("MALFORMED_QUERY", f"unexpected keyword {name} in the field list")
    return SoqlQuery(tuple(fields), sobject, tuple(where), order_by, descending, limit)


def _condition(parser: _Parser) -> Condition:
    name = parser.take("word")
    if parser.keyword("NOT", "IN"):
        return Condition(name, "NOT IN", _literal_list(parser))
    if parser.keyword("IN"):
        return Condition(name, "IN", _literal_list(parser))
    if parser.keyword("LIKE"):
        return Condition(name, "LIKE", _literal(parser))
    op = parser.take("op")
    return Condition(name, "!=" if op == "<>" else op, _literal(parser))


def _literal_list(parser: _Parser) -> tuple[Literal, ...]:
    parser.take("punct", "(")
    values = [_literal(parser)]
    while parser.peek() == ("punct", ","):
        parser.pos += 1
        values.append(_literal(parser))
    parser.take("punct", ")")
    return tuple(values)


def _literal(parser: _Parser) -> Literal:
    token = parser.peek()
    if token is None:
        raise SoqlError("MALFORMED_QUERY", "a value is missing at the end of the query")
    kind, value = token
    parser.pos += 1
    if kind == "string":
        return Literal("string", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value[1:-1]))
    if kind == "number":
        return Literal("number", float(value))
    if kind == "datetime":
        return Literal("datetime", parse_sf_datetime(value))
    if kind == "date":
        return Literal("date", date.fromisoformat(value))
    if kind == "word" and value.upper() in ("TRUE", "FALSE"):
        return Literal("boolean", value.upper() == "TRUE")
    if kind == "word" and value.upper() == "NULL":
        return Literal("null", None)
    raise SoqlError("MALFORMED_QUERY", f"unexpected token {value!r} where a value belongs")


def _operand(fdef: FieldDef, literal: Literal) -> Any:
    """The literal as a value comparable with the field's values; refuses mismatched types as Salesforce does."""
    if literal.kind == "null":
        return None
    expected = {"datetime": "datetime", "date": "date", "boolean": "boolean"}.get(fdef.type)
    if expected is None:
        expected = "number" if fdef.type in _NUMBER_TYPES else "string"
    if literal.kind != expected:
        quoting = "be enclosed in quotes" if expected == "string" else "not be enclosed in quotes"
        type_name = "dateTime" if expected == "datetime" else expected
        raise SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{fdef.name}' must be of type {type_name} and should {quoting}",
        )
    return literal.value


def _equal(value: Any, operand: Any, fdef: FieldDef) -> bool:
    if value is None or operand is None:
        return value is None and operand is None
    if fdef.type in ("id", "reference"):
        return value == operand or (len(operand) == 15 and value[:15] == operand)
    if isinstance(value, str):
        return value.casefold() == str(operand).casefold()  # SOQL string comparison ignores case
    return value == operand


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def _matches(record: Mapping[str, Any], fdef: FieldDef, op: str, operand: Any) -> bool:
    value = record.get(fdef.name)
    if op == "=":
        return _equal(value, operand, fdef)
    if op == "!=":
        return not _equal(value, operand, fdef)
    if op in ("IN", "NOT IN"):
        found = any(_equal(value, o, fdef) for o in operand)
        return found if op == "IN" else not found
    if op == "LIKE":
        return _like(value, operand)
    if value is None or operand is None:
        return False
    if isinstance(value, str):
        value, operand = value.casefold(), str(operand).casefold()
    return {">": value > operand, ">=": value >= operand, "<": value < operand, "<=": value <= operand}[op]


# --------------------------------------------------------------------------------------- write errors


class RecordError(ValueError):
    """Why one record of a write failed (a per-record error in a collection result)."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)

    def as_result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


@dataclass
class _Rejection:
    code: str
    message: str
    times: int | None  # None: every time


def _coerce(fdef: FieldDef, value: Any) -> Any:
    """A JSON value written to a field, as the stored Python value; RecordError when it does not fit."""
    if value is None:
        if not fdef.nillable and fdef.type != "boolean":
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{fdef.name}]", [fdef.name])
        return None
    wrong = RecordError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{fdef.name}: value not of required type: {value!r}", [fdef.name]
    )
    try:
        if fdef.type == "datetime":
            return truncate_ms(value if isinstance(value, datetime) else parse_sf_datetime(value))
        if fdef.type == "date":
            return value if isinstance(value, date) else date.fromisoformat(value)
    except (TypeError, ValueError):
        raise wrong from None
    if fdef.type == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if fdef.type in _NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return int(value) if fdef.type == "int" else float(value)
    if not isinstance(value, str):
        raise wrong
    if fdef.length and len(value) > fdef.length:
        raise RecordError(
            "STRING_TOO_LONG",
            f"{fdef.name}: data value too large: {value[:40]} (max length={fdef.length})",
            [fdef.name],
        )
    if fdef.type == "email" and value and not _EMAIL.match(value):
        raise RecordError("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}", [fdef.name])
    return value


def _json_value(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, datetime):
        return sf_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if fdef.type == "int" and isinstance(value, float):
        return int(value)
    return value


# ------------------------------------------------------------------------------------------ the app

_V = r"/services/data/v(?P<version>\d+\.\d)"


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response.json([{"errorCode": code, "message": message}], status, dict(headers or {}))


class SalesforceSandbox(SandboxApp):
    """The stand-in. Test helpers: `add_record`, `update_record`, `delete_record`, `add_custom_field`,
    `reject`, `records`, `query_requests`, and `clock`; faults: `inject(...)` with the helpers below."""

    name = "salesforce"

    def __init__(
        self,
        world: World | None = None,
        *,
        seed: int = 7,
        clock: SandboxClock | None = None,
        api_limit: int = DEFAULT_API_LIMIT,
        instance_url: str = SANDBOX_INSTANCE_URL,
    ):
        super().__init__()
        self.world = world or build_world(seed)
        self.clock = clock or SandboxClock()
        self.api_limit = api_limit
        self.api_used = 0
        self.instance_url = instance_url
        self.objects: dict[str, SObjectType] = {
            name: SObjectType(name, prefix, {f.name: f for f in fields})
            for name, (prefix, fields) in _schemas().items()
        }
        self._sessions: set[str] = {SANDBOX_SESSION_ID}
        self._session_counter = itertools.count(1)
        self._cursors: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self._cursor_counter = itertools.count(1)
        self._rejections: dict[str, _Rejection] = {}
        self._locator_objects: dict[str, str] = {}
        self.integration_user_id = salesforce_id("005", 1)  # the seeder's first user
        _Seeder(self).seed()
        self._routes_for_api()

    # -- routes -----------------------------------------------------------------------------------

    def _routes_for_api(self) -> None:
        self.route("POST", r"/services/oauth2/token", self._token)
        self.route("POST", r"/services/Soap/u/(?P<version>\d+\.\d)", self._soap_login)
        self.route("GET", r"/services/data", self._versions)
        self.route("GET", _V + r"/limits", self._api(self._limits))
        self.route("GET", _V + r"/sobjects", self._api(self._sobjects))
        self.route("GET", _V + r"/sobjects/(?P<sobject>\w+)/describe", self._api(self._describe))
        self.route("GET", _V + r"/(?P<endpoint>query|queryAll)", self._api(self._query))
        self.route("GET", _V + r"/(?:query|queryAll)/(?P<locator>01g\w+)-(?P<offset>\d+)", self._api(self._more))
        self.route("POST", _V + r"/composite/sobjects", self._api(self._collection_create))
        self.route("PATCH", _V + r"/composite/sobjects", self._api(self._collection_update))
        self.route("PATCH", _V + r"/composite/sobjects/(?P<sobject>\w+)/(?P<key>\w+)", self._api(self._upsert))

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if request.path.startswith("/services/data/v"):
            # On every API answer, faults included, as the real API does; a copy, since a fault's
            # response object is shared between the requests it answers.
            headers = {**response.headers, "Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}
            response = Response(response.status, response.body, headers)
        return response

    def error(self, status: int, message: str) -> Response:
        code = {404: "NOT_FOUND", 500: "UNKNOWN_EXCEPTION"}.get(status, "UNKNOWN_EXCEPTION")
        return _error(status, code, message)

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        """Version check, bearer auth and the daily quota around an API handler."""

        def wrapped(request: Request, version: str, **kwargs: str) -> Response:
            if version not in API_VERSIONS:
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if token not in self._sessions:
                return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            with self.lock:
                if self.api_used >= self.api_limit:
                    return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                self.api_used += 1
                return handler(request, version=version, **kwargs)

        return wrapped

    # -- auth -------------------------------------------------------------------------------------

    def _issue_session(self) -> str:
        token = f"{ORG_ID[:15]}!sandbox-session-{next(self._session_counter):06d}"
        self._sessions.add(token)
        return token

    def expire_sessions(self) -> None:
        """Every issued session becomes invalid (the fixed SANDBOX_SESSION_ID stays valid)."""
        with self.lock:
            self._sessions = {SANDBOX_SESSION_ID}

    def _token(self, request: Request) -> Response:
        form = request.form()
        grant = form.get("grant_type")
        if grant == "client_credentials":
            key, secret = form.get("client_id"), form.get("client_secret")
            basic = request.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                key, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            ok = (key, secret) == (SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET)
        elif grant == "password":
            ok = (form.get("client_id"), form.get("client_secret")) == (
                SANDBOX_CONSUMER_KEY,
                SANDBOX_CONSUMER_SECRET,
            ) and (form.get("username"), form.get("password")) == (SANDBOX_USERNAME, SANDBOX_PASSWORD)
        else:
            return Response.json(
                {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400
            )
        if not ok:
            return Response.json({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        return Response.json(
            {
                "access_token": self._issue_session(),
                "instance_url": self.instance_url,
                "id": f"https://login.salesforce.com/id/{ORG_ID}/{self.integration_user_id}",
                "token_type": "Bearer",
                "issued_at": str(int(self.clock.now().timestamp() * 1000)),
                "signature": "c2FuZGJveA==",
            }
        )

    def _soap_login(self, request: Request, version: str) -> Response:
        try:
            dom = xml.dom.minidom.parseString(request.body)
            username = dom.getElementsByTagName("n1:username")[0].firstChild.nodeValue  # type: ignore[union-attr]
            password = dom.getElementsByTagName("n1:password")[0].firstChild.nodeValue  # type: ignore[union-attr]
        except (IndexError, AttributeError, xml.parsers.expat.ExpatError):
            username = password = None
        if (username, password) != (SANDBOX_USERNAME, SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN):
            fault = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com">'
                "<soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><detail><sf:LoginFault>"
                "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, "
                "security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
                "</soapenv:Body></soapenv:Envelope>"
            )
            return Response(500, fault, {"Content-Type": "text/xml"})
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
            "<soapenv:Body><loginResponse><result><passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
            f"<serverUrl>{self.instance_url}/services/Soap/u/{version}/{ORG_ID[:15]}</serverUrl>"
            f"<sessionId>{self._issue_session()}</sessionId><userId>{self.integration_user_id}</userId>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(200, body, {"Content-Type": "text/xml"})

    # -- metadata ---------------------------------------------------------------------------------

    def _versions(self, request: Request) -> Response:
        return Response.json([{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS])

    def _limits(self, request: Request, version: str) -> Response:
        return Response.json(
            {"DailyApiRequests": {"Max": self.api_limit, "Remaining": max(0, self.api_limit - self.api_used)}}
        )

    def _sobjects(self, request: Request, version: str) -> Response:
        objects = []
        for obj in self.objects.values():
            summary = obj.describe()
            summary.pop("fields")
            objects.append(summary)
        return Response.json({"encoding": "UTF-8", "maxBatchSize": COLLECTION_LIMIT, "sobjects": objects})

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._object(sobject)
        if obj is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        return Response.json(obj.describe())

    def _object(self, name: str) -> SObjectType | None:
        return self.objects.get(name) or next(
            (o for o in self.objects.values() if o.name.lower() == name.lower()), None
        )

    # -- queries ----------------------------------------------------------------------------------

    def _query(self, request: Request, version: str, endpoint: str) -> Response:
        text = request.arg("q")
        if not text:
            return _error(400, "MALFORMED_QUERY", "A query string (q) is required")
        try:
            records = self.run_soql(text, include_deleted=endpoint == "queryAll")
        except SoqlError as exc:
            return _error(400, exc.code, str(exc))
        locator = f"01g5g0000{next(self._cursor_counter):06d}"
        self._cursors[locator] = (endpoint, records)
        self._locator_objects[locator] = _from_object(text)
        return self._page(version, locator, 0, _batch_size(request))

    def _more(self, request: Request, version: str, locator: str, offset: str) -> Response:
        if locator not in self._cursors:
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, locator, int(offset), _batch_size(request))

    def _page(self, version: str, locator: str, offset: int, size: int) -> Response:
        endpoint, records = self._cursors[locator]
        end = offset + size
        body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records), "records": records[offset:end]}
        if end < len(records):
            body["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{locator}-{end}"
        else:
            del self._cursors[locator]  # a finished cursor is closed, as Salesforce closes it
        return Response.json(body)

    def run_soql(self, text: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The records a query returns, in the API's JSON shape (what `query`/`queryAll` serve)."""
        query = parse_soql(text)
        obj = self._object(query.sobject)
        if obj is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
        selected = [self._field_or_fail(obj, name) for name in query.fields]
        filters = []
        for condition in query.where:
            fdef = self._field_or_fail(obj, condition.field)
            if fdef.type in _COMPOUND_TYPES or fdef.type == "anyType" and condition.op != "=":
                raise SoqlError("INVALID_FIELD", f"field '{fdef.name}' can not be filtered in a query call")
            operand = (
                tuple(_operand(fdef, lit) for lit in condition.value)
                if isinstance(condition.value, tuple)
                else _operand(fdef, condition.value)
            )
            filters.append((fdef, condition.op, operand))
        with self.lock:
            rows = [
                r
                for r in obj.records.values()
                if (include_deleted or not r.get("IsDeleted"))
                and all(_matches(r, fdef, op, operand) for fdef, op, operand in filters)
            ]
            rows = self._sorted(obj, rows, query)
            return [self._serialize(obj, r, selected) for r in rows]

    def _sorted(self, obj: SObjectType, rows: list[dict[str, Any]], query: SoqlQuery) -> list[dict[str, Any]]:
        if query.order_by:
            key_field = self._field_or_fail(obj, query.order_by)

            fold = key_field.type not in ("id", "reference")  # text sorts ignoring case, ids as they are

            # Salesforce sorts nulls first when ascending and last when descending.
            def key(r: dict[str, Any]) -> tuple[bool, Any]:
                value = r.get(key_field.name)
                return (value is not None, value.casefold() if fold and isinstance(value, str) else value)

            rows = sorted(rows, key=lambda r: r["Id"])
            rows.sort(key=key, reverse=query.descending)
        return rows[: query.limit] if query.limit is not None else rows

    def _field_or_fail(self, obj: SObjectType, name: str) -> FieldDef:
        fdef = obj.field(name)
        if fdef is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'.")
        return fdef

    def _serialize(self, obj: SObjectType, record: Mapping[str, Any], fields: Iterable[FieldDef]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {"type": obj.name, "url": f"/services/data/v59.0/sobjects/{obj.name}/{record['Id']}"}
        }
        for fdef in fields:
            if fdef.type == "address":
                out[fdef.name] = self._compound_address(obj, record, fdef.name)
            else:
                out[fdef.name] = _json_value(fdef, record.get(fdef.name))
        return out

    def _compound_address(self, obj: SObjectType, record: Mapping[str, Any], compound: str) -> dict[str, Any] | None:
        parts = {
            f.name.removeprefix(compound.removesuffix("Address")): record.get(f.name)
            for f in obj.fields.values()
            if f.compound_field_name == compound
        }
        if all(v is None for v in parts.values()):
            return None
        return {k[0].lower() + k[1:]: v for k, v in parts.items()}

    # -- sObject Collections -------------------------------------------------------------------------

    def _collection_body(self, request: Request) -> tuple[bool, list[dict[str, Any]]] | Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _error(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
        if len(records) > COLLECTION_LIMIT:
            return _error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        for record in records:
            if self._object(str((record.get("attributes") or {}).get("type", ""))) is None:
                return _error(400, "INVALID_TYPE", "every record needs attributes.type naming a supported sObject")
        return bool(body.get("allOrNone", False)), records

    def _collection_create(self, request: Request, version: str) -> Response:
        return self._collection_write(request, self._plan_create)

    def _collection_update(self, request: Request, version: str) -> Response:
        return self._collection_write(request, lambda obj, record: self._plan_update(obj, record.get("Id"), record))

    def _collection_write(self, request: Request, plan: Callable[[SObjectType, dict[str, Any]], _Write]) -> Response:
        """A create or update of records of any types: each planned with `plan`, then committed together."""
        parsed = self._collection_body(request)
        if isinstance(parsed, Response):
            return parsed
        all_or_none, records = parsed
        plans = []
        for record in records:
            obj = self._object(record["attributes"]["type"])
            assert obj is not None
            plans.append(self._plan(lambda obj=obj, record=record: plan(obj, record)))
        return self._commit(plans, all_or_none)

    def _upsert(self, request: Request, version: str, sobject: str, key: str) -> Response:
        obj = self._object(sobject)
        if obj is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        key_field = obj.field(key)
        if key_field is None or not (key_field.external_id or key_field.type == "id"):
            return _error(400, "INVALID_FIELD", f"Field {key} is not an external id field on {obj.name}")
        parsed = self._collection_body(request)
        if isinstance(parsed, Response):
            return parsed
        all_or_none, records = parsed
        if any(self._object(r["attributes"]["type"]) is not obj for r in records):
            return _error(400, "INVALID_TYPE", f"every record must be of type {obj.name}")
        plans = [self._plan(lambda record=record: self._plan_upsert(obj, key_field, record)) for record in records]
        return self._commit(plans, all_or_none)

    @staticmethod
    def _plan(make: Callable[[], _Write]) -> _Write | RecordError:
        try:
            return make()
        except RecordError as exc:
            return exc

    def _commit(self, plans: list[_Write | RecordError], all_or_none: bool) -> Response:
        """Apply the writes that validated (all or none of them) and answer with per-record results."""
        failed = any(isinstance(p, RecordError) for p in plans)
        results = []
        with self.lock:
            stamp = self.clock.tick() if not (failed and all_or_none) else None
            for plan in plans:
                if isinstance(plan, RecordError):
                    results.append({"id": None, "success": False, "errors": [plan.as_result()]})
                elif stamp is None:
                    rolled_back = RecordError(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using "
                        "AllOrNone header",
                    )
                    results.append({"id": plan.record_id, "success": False, "errors": [rolled_back.as_result()]})
                else:
                    record_id = plan.apply(stamp, self.integration_user_id)
                    result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
                    if plan.upsert:
                        result["created"] = plan.created
                    results.append(result)
        return Response.json(results)

    def _plan_create(self, obj: SObjectType, payload: Mapping[str, Any]) -> _Write:
        if payload.get("Id"):
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"])
        values = self._validated(obj, payload, creating=True)
        self._check_rejections(obj, None, values)
        return _Write(self, obj, None, values, created=True)

    def _plan_update(self, obj: SObjectType, record_id: Any, payload: Mapping[str, Any]) -> _Write:
        if not isinstance(record_id, str) or not record_id:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        record = self._find_by_id(obj, record_id)
        if record is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}", ["Id"])
        if record.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        values = self._validated(obj, {k: v for k, v in payload.items() if k != "Id"}, creating=False)
        self._check_rejections(obj, record, values)
        return _Write(self, obj, record["Id"], values, created=False)

    def _plan_upsert(self, obj: SObjectType, key_field: FieldDef, payload: Mapping[str, Any]) -> _Write:
        key_value = payload.get(key_field.name)
        if key_value in (None, ""):
            raise RecordError("MISSING_ARGUMENT", f"{key_field.name} not specified", [key_field.name])
        with self.lock:
            matches = [
                r
                for r in obj.records.values()
                if not r.get("IsDeleted") and _equal(r.get(key_field.name), key_value, key_field)
            ]
        if len(matches) > 1:
            ids = ", ".join(r["Id"] for r in matches)
            raise RecordError(
                "DUPLICATE_EXTERNAL_ID", f"{key_field.name} matches several records: {ids}", [key_field.name]
            )
        if matches:
            write = self._plan_update(obj, matches[0]["Id"], {k: v for k, v in payload.items() if k != "Id"})
        else:
            write = self._plan_create(obj, {k: v for k, v in payload.items() if k != "Id"})
        write.upsert = True
        return write

    def _find_by_id(self, obj: SObjectType, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            if record_id in obj.records:
                return obj.records[record_id]
            if len(record_id) == 15:
                return next((r for rid, r in obj.records.items() if rid[:15] == record_id), None)
        return None

    def _validated(self, obj: SObjectType, payload: Mapping[str, Any], creating: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in payload.items():
            if name == "attributes":
                continue
            fdef = obj.field(name)
            if fdef is None:
                raise RecordError("INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name])
            if not (fdef.createable if creating else fdef.updateable):
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {fdef.name}. Please check the security settings of this "
                    "field and verify that it is read/write for your profile or permission set.",
                    [fdef.name],
                )
            values[fdef.name] = _coerce(fdef, value)
        if creating:
            missing = [n for n in _REQUIRED.get(obj.name, ()) if values.get(n) in (None, "")]
            if missing:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                )
        return values

    # -- per-record failures ------------------------------------------------------------------------

    def reject(
        self,
        keys: Iterable[str],
        code: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message: str = "Rejected by a validation rule",
        times: int | None = None,
    ) -> None:
        """Writes touching these records fail with `code`: keys are record ids, emails or external ids.

        `times` limits how often each key fails (e.g. a transient `UNABLE_TO_LOCK_ROW`); None: always.
        """
        with self.lock:
            for key in keys:
                self._rejections[key.strip().lower()] = _Rejection(code, message, times)

    def _check_rejections(self, obj: SObjectType, record: Mapping[str, Any] | None, values: Mapping[str, Any]) -> None:
        if not self._rejections:
            return
        candidates = {v for v in values.values() if isinstance(v, str)}
        if record is not None:
            candidates |= {record["Id"], record["Id"][:15]}
            candidates |= {v for k, v in record.items() if isinstance(v, str) and (k == "Email" or k.endswith("__c"))}
        with self.lock:
            for candidate in candidates:
                rejection = self._rejections.get(candidate.strip().lower())
                if rejection is None:
                    continue
                if rejection.times is not None:
                    rejection.times -= 1
                    if rejection.times <= 0:
                        del self._rejections[candidate.strip().lower()]
                raise RecordError(rejection.code, rejection.message, [])

    # -- writes (shared by the API, the seeder and the test helpers) -------------------------------------

    def insert(self, obj: SObjectType, values: Mapping[str, Any], at: datetime, by: str) -> str:
        """Store a new record with system fields set; `values` are already coerced."""
        record_id = obj.new_id()
        record: dict[str, Any] = {f: None for f in obj.fields if obj.fields[f].type not in _COMPOUND_TYPES}
        for fdef in obj.fields.values():
            if fdef.type == "boolean":
                record[fdef.name] = False
        record.update(values)
        record.update(Id=record_id, IsDeleted=False, CreatedDate=at, CreatedById=by)
        if "SystemModstamp" in obj.fields:
            record.update(LastModifiedDate=at, LastModifiedById=by, SystemModstamp=at)
        if "OwnerId" in obj.fields and not record.get("OwnerId"):
            record["OwnerId"] = by
        self._derive(obj, record)
        obj.records[record_id] = record
        tracked = _TRACKED.get(obj.name)
        if tracked:
            self._history(tracked, record_id, "created", None, None, at, by)
        return record_id

    def update(self, obj: SObjectType, record_id: str, values: Mapping[str, Any], at: datetime, by: str) -> None:
        """Change a record, stamp it, and write history rows for tracked fields that changed."""
        record = obj.records[record_id]
        tracked = _TRACKED.get(obj.name)
        before = dict(record)
        record.update(values)
        self._derive(obj, record)
        if "SystemModstamp" in obj.fields:
            record.update(LastModifiedDate=at, LastModifiedById=by, SystemModstamp=at)
        if tracked:
            for name in sorted(tracked[2]):
                if before.get(name) != record.get(name):
                    self._history(tracked, record_id, name, before.get(name), record.get(name), at, by)

    def _derive(self, obj: SObjectType, record: dict[str, Any]) -> None:
        """Fields Salesforce computes from others."""
        if "FirstName" in obj.fields and "Name" in obj.fields:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj.name == "Opportunity":
            stage = record.get("StageName")
            record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
            record["IsWon"] = stage == "Closed Won"
            record["Probability"] = float(_STAGE_PROBABILITY.get(stage, 0))
        if obj.name == "CampaignMember":
            record["HasResponded"] = record.get("Status") == "Responded"

    def _history(
        self,
        tracked: tuple[str, str, frozenset[str]],
        parent_id: str,
        name: str,
        old: Any,
        new: Any,
        at: datetime,
        by: str,
    ) -> None:
        history_name, parent_field, _ = tracked
        history = self.objects[history_name]
        parent = self.objects["Lead" if history_name == "LeadHistory" else "Opportunity"]
        fdef = parent.fields.get(name)
        data_type = _HISTORY_DATA_TYPES.get(fdef.type, "Text") if fdef else "EntityId"
        row_id = history.new_id()
        history.records[row_id] = {
            "Id": row_id,
            "IsDeleted": False,
            parent_field: parent_id,
            "CreatedById": by,
            "CreatedDate": at,
            "Field": name,
            "DataType": data_type,
            "OldValue": _json_value(fdef, old) if fdef else old,
            "NewValue": _json_value(fdef, new) if fdef else new,
        }

    # -- test helpers -------------------------------------------------------------------------------

    def _obj(self, sobject: str) -> SObjectType:
        obj = self._object(sobject)
        if obj is None:
            raise KeyError(f"no sObject {sobject!r} in the sandbox")
        return obj

    def add_record(self, sobject: str, **values: Any) -> str:
        """Create a record now (on the sandbox clock), validated as the API would; returns its id."""
        obj = self._obj(sobject)
        with self.lock:
            write = self._plan_create(obj, values)
            return write.apply(self.clock.tick(), self.integration_user_id)

    def update_record(self, sobject: str, record_id: str, **values: Any) -> None:
        """Change a record now: SystemModstamp/LastModifiedDate move to the clock, history is written."""
        obj = self._obj(sobject)
        with self.lock:
            self._plan_update(obj, record_id, values).apply(self.clock.tick(), self.integration_user_id)

    def delete_record(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin: IsDeleted, stamped now; `query` no longer sees it, `queryAll` does."""
        obj = self._obj(sobject)
        with self.lock:
            record = obj.records[record_id]
            stamp = self.clock.tick()
            record["IsDeleted"] = True
            if "SystemModstamp" in obj.fields:
                record.update(SystemModstamp=stamp, LastModifiedDate=stamp, LastModifiedById=self.integration_user_id)

    def add_custom_field(
        self,
        sobject: str,
        name: str,
        field_type: str = "string",
        values: Mapping[str, Any] | Callable[[Mapping[str, Any]], Any] | None = None,
        *,
        length: int = 255,
        external_id: bool = False,
    ) -> FieldDef:
        """Add a `__c` field to an object's describe, optionally filling it.

        Filling values is an update of those records (as a data load would be), so their SystemModstamp
        moves to now; records left empty keep theirs, exactly as when an admin adds a field in Salesforce.
        `values` maps record ids to values, or computes a value from a record (None leaves it empty).
        """
        if not name.endswith("__c"):
            raise ValueError("custom field names end with __c")
        obj = self._obj(sobject)
        sized = {"length": length} if field_type in _TEXT_TYPES else {}
        fdef = _f(name, field_type, external_id=external_id, **sized)
        with self.lock:
            if obj.field(name) is not None:
                raise ValueError(f"{obj.name} already has a field {name}")
            obj.fields[name] = fdef
            for record in obj.records.values():
                record[name] = None
            if values is not None:
                stamp = self.clock.tick()
                for record_id, record in obj.records.items():
                    value = values(record) if callable(values) else values.get(record_id)
                    if value is not None:
                        self.update(obj, record_id, {name: _coerce(fdef, value)}, stamp, self.integration_user_id)
        return fdef

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of an object in the API's JSON shape (all fields)."""
        obj = self._obj(sobject)
        fields = [f for f in obj.fields.values() if f.type not in _COMPOUND_TYPES]
        with self.lock:
            return [
                self._serialize(obj, r, fields)
                for r in obj.records.values()
                if include_deleted or not r.get("IsDeleted")
            ]

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        obj = self._obj(sobject)
        return self._serialize(
            obj, obj.records[record_id], [f for f in obj.fields.values() if f.type not in _COMPOUND_TYPES]
        )

    def query_requests(self, sobject: str | None = None) -> list[Request]:
        """Logged query calls, first pages and `nextRecordsUrl` pages alike, optionally of one object."""
        calls = self.requests("GET", r"/(query|queryAll)(/|$)")
        if sobject is None:
            return calls
        return [r for r in calls if self._queried_object(r).lower() == sobject.lower()]

    def _queried_object(self, request: Request) -> str:
        text = request.arg("q")
        if text:
            return _from_object(text)
        locator = request.path.rstrip("/").rsplit("/", 1)[-1].split("-")[0]
        return self._locator_objects.get(locator, "")


def _from_object(soql: str) -> str:
    match = re.search(r"\bFROM\s+(\w+)", soql, re.IGNORECASE)
    return match.group(1) if match else ""


@dataclass
class _Write:
    """A validated create or update, applied only when the whole call commits."""

    app: SalesforceSandbox
    obj: SObjectType
    record_id: str | None
    values: dict[str, Any]
    created: bool
    upsert: bool = False

    def apply(self, at: datetime, by: str) -> str:
        if self.record_id is None:
            self.record_id = self.app.insert(self.obj, self.values, at, by)
        else:
            self.app.update(self.obj, self.record_id, self.values, at, by)
        return self.record_id


def _batch_size(request: Request) -> int:
    options = request.headers.get("Sforce-Query-Options", "")
    match = re.search(r"batchSize=(\d+)", options)
    if not match:
        return DEFAULT_BATCH_SIZE
    return min(DEFAULT_BATCH_SIZE, max(MIN_BATCH_SIZE, int(match.group(1))))


# ------------------------------------------------------------------------------------------- faults

_API_PATHS = r"^/services/data/v"


def request_limit_exceeded(times: int = 1, path: str = _API_PATHS) -> Fault:
    """The org's daily quota is used up: 403 REQUEST_LIMIT_EXCEEDED (simple-salesforce never retries it)."""
    return Fault(_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), times=times, path=path)


def server_error(status: int = 503, times: int = 1, path: str = _API_PATHS) -> Fault:
    return Fault(_error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable"), times=times, path=path)


def rate_limited(retry_after: float = 1, times: int = 1, path: str = _API_PATHS) -> Fault:
    headers = {"Retry-After": f"{retry_after:g}"}
    return Fault(_error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", headers), times=times, path=path)


def slow(delay: float, times: int = 1, path: str = _API_PATHS) -> Fault:
    """Answer only after `delay` seconds (a timeout for a client that waits less); then a 503."""
    return Fault(_error(503, "SERVER_UNAVAILABLE", "timed out"), times=times, path=path, delay=delay)


# ------------------------------------------------------------------------------------------- seeding

_REPS = (
    ("Maria", "Lopez", "AMER"),
    ("Kenji", "Sato", "APAC"),
    ("Priya", "Raman", "EMEA"),
    ("Tom", "Becker", "EMEA"),
    ("Ada", "Okafor", "AMER"),
)
_CAMPAIGNS = (
    ("Warehouse-first CDP Webinar", "Webinar", "online", 2, 6),
    ("Product Signup Nurture", "Email", "online", 0, 14),
    ("Enterprise Trial Outreach", "Email", "online", 4, 14),
    ("Data Council Booth", "Conference", "offline", 6, 9),
)
_PLAN_AMOUNT = {"pro": 6_000.0, "enterprise": 48_000.0, "free": 0.0}
_PLAN_RANK = {None: 0, "free": 1, "pro": 2, "enterprise": 3}


class _Seeder:
    """Builds the org's records from the world, in time order per person so stamps and history agree."""

    def __init__(self, app: SalesforceSandbox):
        self.app = app
        self.world = app.world
        self.rng = random.Random(app.world.seed * 7919 + 11)
        self.o = app.objects
        self.integration = ""
        self.reps: list[str] = []
        self.campaigns: list[str] = []
        self.accounts: dict[str, str] = {}

    def seed(self) -> None:
        self._users()
        self._campaigns()
        people = [p for p in self.world.people if p.lifecycle_stage != "visitor"]
        self._accounts(people)
        for person in people:
            self._person(person)

    def _insert(self, name: str, at: datetime, by: str | None = None, **values: Any) -> str:
        return self.app.insert(self.o[name], values, truncate_ms(at), by or self.integration)

    def _update(self, name: str, record_id: str, at: datetime, by: str | None = None, **values: Any) -> None:
        self.app.update(self.o[name], record_id, values, truncate_ms(at), by or self.integration)

    def _users(self) -> None:
        start = self.world.start - timedelta(days=400)
        self.integration = salesforce_id("005", 1)
        self._insert(
            "User",
            start,
            self.integration,
            Username=SANDBOX_USERNAME,
            FirstName="Integration",
            LastName="User",
            Email=SANDBOX_USERNAME,
            IsActive=True,
            UserType="AutomatedProcess",
            Department="Data",
        )
        for index, (first, last, region) in enumerate(_REPS):
            email = f"{first.lower()}.{last.lower()}@rudderstack.com"
            self.reps.append(
                self._insert(
                    "User",
                    start + timedelta(days=30 * (index + 1)),
                    Username=email,
                    FirstName=first,
                    LastName=last,
                    Email=email,
                    IsActive=True,
                    UserType="Standard",
                    Title="Account Executive",
                    Department="Sales",
                    Sales_Region__c=region,
                )
            )

    def _campaigns(self) -> None:
        for name, type_, channel, start_day, end_day in _CAMPAIGNS:
            start = self.world.start + timedelta(days=start_day)
            self.campaigns.append(
                self._insert(
                    "Campaign",
                    start - timedelta(days=7),
                    self.rng.choice(self.reps),
                    Name=name,
                    Type=type_,
                    Status="In Progress",
                    StartDate=start.date(),
                    EndDate=(self.world.start + timedelta(days=end_day)).date(),
                    IsActive=True,
                    BudgetedCost=float(self.rng.choice((5_000, 10_000, 25_000))),
                    Channel__c=channel,
                )
            )

    def _accounts(self, people: list[Person]) -> None:
        """An Account per company with a converted person, or with three or more leads (a target account)."""
        first_touch: dict[str, datetime] = {}
        lead_counts: dict[str, list[datetime]] = {}
        customers: dict[str, list[Person]] = {}
        for person in people:
            company = person.company.company_id
            lead_counts.setdefault(company, []).append(_lead_created(person))
            converted = _converted_at(person)
            if converted is not None:
                first_touch[company] = min(first_touch.get(company, converted), converted)
            if person.customer_at is not None:
                customers.setdefault(company, []).append(person)
        for company_id, stamps in lead_counts.items():
            if company_id not in first_touch and len(stamps) >= 3:
                first_touch[company_id] = sorted(stamps)[2]
        for company_id, created in sorted(first_touch.items()):
            company = self.world.company(company_id)
            self.accounts[company_id] = self._account(company, created, customers.get(company_id, []))

    def _account(self, company: Company, created: datetime, customers: list[Person]) -> str:
        account_id = self._insert(
            "Account",
            created,
            self.rng.choice(self.reps),
            Name=company.name,
            Type="Prospect",
            Website=f"https://www.{company.domain}",
            Industry=company.industry,
            NumberOfEmployees=company.employees,
            BillingCountry=company.country,
            Domain__c=company.domain,
        )
        for person in sorted(customers, key=lambda p: p.customer_at or created):
            record = self.o["Account"].records[account_id]
            plan = person.plan if _PLAN_RANK[person.plan] > _PLAN_RANK[record.get("Plan__c")] else record["Plan__c"]
            since = record.get("Customer_Since__c") or (person.customer_at or created).date()
            self._update(
                "Account",
                account_id,
                max(person.customer_at or created, created),
                Type="Customer",
                Plan__c=plan,
                Customer_Since__c=since,
            )
        return account_id

    def _person(self, person: Person) -> None:
        owner = self.rng.choice(self.reps)
        created = _lead_created(person)
        # The events of this person's record(s), applied in time order.
        events: list[tuple[datetime, Callable[[], None]]] = []
        ids: dict[str, str] = {}
        ids["lead"] = self._insert(
            "Lead",
            created,
            owner,
            FirstName=person.first_name,
            LastName=person.last_name,
            Email=person.email,
            Company=person.company.name,
            Title=person.title,
            Phone=person.phone,
            Country=person.country,
            LeadSource="Web" if person.lead_at else "Product Signup",
            Status="Open - Not Contacted",
            Industry=person.company.industry,
            NumberOfEmployees=person.company.employees,
            Person_Id__c=person.person_id,
            Lifecycle_Stage__c="lead",
        )
        if person.signed_up_at is not None and person.lead_at is not None:
            events.append((person.signed_up_at, lambda: self._signed_up(person, ids["lead"])))
        elif person.signed_up_at is not None:
            self._signed_up(person, ids["lead"])  # the lead was created by the sign-up itself
        converted = _converted_at(person)
        if converted is not None:
            events.append((converted, lambda: self._convert(person, ids, owner, converted)))
            if person.customer_at is not None:
                events.append((person.customer_at, lambda: self._won(person, ids)))
            elif self.rng.random() < 0.3 and converted + timedelta(days=3) < WORLD_END:
                lost = converted + timedelta(days=3)
                events.append(
                    (lost, lambda: self._update("Opportunity", ids["opportunity"], lost, StageName="Closed Lost"))
                )
        elif self.rng.random() < 0.15 and created + timedelta(days=4) < WORLD_END:
            closed = created + timedelta(days=4)
            events.append(
                (closed, lambda: self._update("Lead", ids["lead"], closed, owner, Status="Closed - Not Converted"))
            )
        for change in person.consent_changes:
            if change.system == "salesforce" and change.channel == "email" and not change.subscribed:
                events.append((change.at, lambda at=change.at: self._opt_out(person, ids, converted, at, owner)))
        if person.is_test and self.rng.random() < 0.5:
            deleted = min(created + timedelta(hours=6), WORLD_END - timedelta(minutes=1))
            events.append((deleted, lambda: self._delete(ids, deleted)))
        events.sort(key=lambda e: e[0])
        for _, apply in events:
            apply()
        self._memberships(person, ids)

    def _signed_up(self, person: Person, lead_id: str) -> None:
        assert person.signed_up_at is not None
        self._update(
            "Lead",
            lead_id,
            person.signed_up_at,
            Status="Working - Contacted",
            Lifecycle_Stage__c="signed_up",
            Product_User_Id__c=person.user_id,
            Signed_Up_At__c=truncate_ms(person.signed_up_at),
        )

    def _convert(self, person: Person, ids: dict[str, str], owner: str, at: datetime) -> None:
        account_id = self.accounts[person.company.company_id]
        stage = "signed_up" if person.signed_up_at else "lead"
        ids["contact"] = self._insert(
            "Contact",
            at,
            owner,
            FirstName=person.first_name,
            LastName=person.last_name,
            Email=person.email,
            Title=person.title,
            Phone=person.phone,
            AccountId=account_id,
            MailingCountry=person.country,
            LeadSource="Web" if person.lead_at else "Product Signup",
            Person_Id__c=person.person_id,
            Product_User_Id__c=person.user_id,
            Lifecycle_Stage__c=stage,
        )
        plan = person.plan if person.plan in ("pro", "enterprise") else "enterprise"
        ids["opportunity"] = self._insert(
            "Opportunity",
            at,
            owner,
            AccountId=account_id,
            Name=f"{person.company.name} - {plan.title()}",
            StageName="Qualification",
            Amount=_PLAN_AMOUNT[plan] * self.rng.choice((1, 1, 2, 3)),
            CloseDate=(at + timedelta(days=30)).date(),
            Type="New Business",
            Plan__c=plan,
            Seats__c=float(self.rng.choice((5, 10, 25, 50))),
        )
        if person.quote_requested_at is not None:
            self._update("Opportunity", ids["opportunity"], at, owner, StageName="Proposal/Price Quote")
        self._update("Lead", ids["lead"], at, owner, Status="Closed - Converted")
        lead = self.o["Lead"].records[ids["lead"]]
        lead.update(
            IsConverted=True,
            ConvertedDate=at.date(),
            ConvertedAccountId=account_id,
            ConvertedContactId=ids["contact"],
            ConvertedOpportunityId=ids["opportunity"],
        )

    def _won(self, person: Person, ids: dict[str, str]) -> None:
        assert person.customer_at is not None
        at = person.customer_at
        self._update("Opportunity", ids["opportunity"], at, StageName="Closed Won", CloseDate=at.date())
        self._update("Contact", ids["contact"], at, Lifecycle_Stage__c="customer", Plan__c=person.plan)

    def _opt_out(
        self, person: Person, ids: dict[str, str], converted: datetime | None, at: datetime, owner: str
    ) -> None:
        # A rep records the opt-out on the record they work with: the contact once the lead is converted.
        target = ("Contact", ids["contact"]) if converted is not None and at >= converted else ("Lead", ids["lead"])
        self._update(*target, at, owner, HasOptedOutOfEmail=True, DoNotCall=person.phone is not None)

    def _delete(self, ids: dict[str, str], at: datetime) -> None:
        for name, key in (("Lead", "lead"), ("Contact", "contact")):
            if key in ids:
                self._update(name, ids[key], at)
                self.o[name].records[ids[key]]["IsDeleted"] = True

    def _memberships(self, person: Person, ids: dict[str, str]) -> None:
        roll = self.rng.random()
        count = 2 if roll < 0.1 else 1 if roll < 0.35 else 0
        for campaign_id in self.rng.sample(self.campaigns, count):
            joined = _lead_created(person) + timedelta(hours=self.rng.uniform(1, 48))
            joined = min(joined, WORLD_END - timedelta(minutes=1))
            responded = self.rng.random() < 0.4
            member = {"LeadId": ids["lead"]} if "contact" not in ids else {"ContactId": ids["contact"]}
            self._insert(
                "CampaignMember",
                joined,
                CampaignId=campaign_id,
                Status="Responded" if responded else "Sent",
                FirstRespondedDate=joined.date() if responded else None,
                Email=person.email,
                **member,
            )


def _lead_created(person: Person) -> datetime:
    """A lead exists from the first form fill or, without one, from the sign-up."""
    return min(t for t in (person.lead_at, person.signed_up_at) if t is not None)


def _converted_at(person: Person) -> datetime | None:
    """Sales converts a lead when its person asks for a quote or becomes a customer, whichever is first."""
    moments = [t for t in (person.quote_requested_at, person.customer_at) if t is not None]
    return min(moments) if moments else None
