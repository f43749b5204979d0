"""Outbound delivery of status changes to subscribed partner systems (architecture §1.5).

    transports   HttpTransport (FHIR conditional PUT, council POST), MllpTransport (A08 + ACK);
                 every library error mapped to an Attempt
    delivery     Deliverer: claim due deliveries, send, record, SLA checks and alerts
    alerts       AlertHook (webhook, recorded) and OutboundMetrics (prometheus, own registry)
    actors       register_outbound_actors(broker, engine, clock, …) and OutboundSweeper
    settings     OutboundSettings (S117HUB_OUTBOUND_*)

The outbox rows (register_core.adapters.outbox) are the truth; broker messages are hints.
"""
