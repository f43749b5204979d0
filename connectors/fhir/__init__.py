"""FHIR R4 inbound: the REST submission logic behind ``/fhir/r4`` and the FHIR poller.

Nothing here starts a thread or opens a socket at import time.

    outcome      OperationOutcome bodies, and MappingError → (HTTP status, issue code)
    submission   one submission (Bundle or single resource) → stored inbox row + FHIR answer
    capability   the CapabilityStatement served at ``/fhir/r4/metadata``
    cursors      the ``poll_cursors`` row of a polled source (cursor, failures, backoff)
    poller       pull Patient / Encounter / EpisodeOfCare changed since the cursor
"""
