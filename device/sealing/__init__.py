"""Capture-time sealing and its verifier (used by the recorder, dock, archive and courts).

The formats are specified in docs/format.md (version 2).  This package is the
*format* part of the import rules: it imports nothing of the project but
``bodycam.errors`` (and ``bodycam.__version__``), and its read side needs only
cryptography, click, pydantic and rfc8785.

Read side (what a court installs):
    verifier        ``Verifier(ca_cert, identity=None, crl=None).verify_recording(root, attestation=None)``
    report          the typed report: ``SegmentStatus``, ``LogStatus``, ``RecordingStatus``, ``require()``
    verify_log      the seal-log chain and what it says about segments (format §5.2, §7.2)
    verify_segment  checks of one segment and its manifest (§7.4)
    unseal          decryption: ``segment_key``, ``decrypt_fragments``, ``unseal_recordings``
    excerpt         ``make_excerpt`` and excerpt verification (§10.1)
    attestation     archive-signed log heads: ``sign_attestation``, ``load_attestation`` (§12.1)
    revocation      the agency CRL: ``revoke``, ``load_crl`` (§7.1)
    models          typed payloads (header, checkpoint, manifest, log entry, event data)
    format          framing, RFC 8785 canonical JSON, hashes
    safeio          ``read_bounded``: the one safe way to read a path a user or a folder names

Write side (the recorder): ``state.SealingState`` (``open``, ``open_segment``,
``log_event``), ``sealer``, ``seallog``.
"""
