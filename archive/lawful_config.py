"""``[lawful_use]`` of the archive config: decryption inside the service,
the time-stamp authority, grants and the people's API.

::

    [lawful_use]
    grant_max_hours = 72          # the longest a grant may run
    approver_totp = true          # agency heads confirm approvals with a TOTP code

    [lawful_use.recipient_keys]   # agency id -> archive recipient key (X25519); only the service reads it
    shuncheng-market = "/etc/bodycam/archive/archive-recipient.key"

    [lawful_use.tsa]              # RFC 3161 time-stamps of the audit log's head
    url = "http://tsa.example.gov.cn/tsr"
    certificates = ["/etc/bodycam/tsa-root.crt"]
    every_minutes = 60

    [lawful_use.c2pa]             # Content Credentials on exported footage (sidecar .c2pa files)
    certificate_chain = "/etc/bodycam/archive/c2pa-chain.pem"
    key = "/etc/bodycam/archive/c2pa.key"
    alg = "es256"

    [lawful_use.people]           # HTTPS for people (bearer tokens); TLS key = [server]'s
    listen = "127.0.0.1"
    port = 8445
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TsaConfig(_Strict):
    url: str = Field(pattern=r"^https?://", description="RFC 3161 time-stamp authority (HTTP POST)")
    certificates: list[Path] = Field(default_factory=list,
                                     description="TSA root certificates for checking its signatures")
    every_minutes: float = Field(60, gt=0, le=24 * 60, description="stamp the audit head this often if it moved")
    timeout_seconds: float = Field(20, gt=0, le=300)


class C2paConfig(_Strict):
    certificate_chain: Path = Field(description="PEM: the C2PA signing certificate, then its issuers")
    key: Path = Field(description="PEM private key of the signing certificate")
    alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    tsa_url: str | None = Field(None, pattern=r"^https?://", description="RFC 3161 TSA for the C2PA signature")


class PeopleConfig(_Strict):
    listen: str = "127.0.0.1"
    port: int = Field(8445, ge=0, le=65535, description="0 picks a free port (tests)")


class LawfulUseConfig(_Strict):
    recipient_keys: dict[str, Path] = Field(default_factory=dict,
                                            description="agency id -> archive recipient key; decryption stays here")
    tsa: TsaConfig | None = None
    c2pa: C2paConfig | None = Field(None, description="C2PA Content Credentials on exported footage")
    people: PeopleConfig = PeopleConfig()
    grant_max_hours: int = Field(72, ge=1, le=24 * 90)
    approver_totp: bool = Field(True, description="approvals need the approver's TOTP code")
    token_hours: int = Field(12, ge=1, le=24 * 30, description="how long a login token lasts")
