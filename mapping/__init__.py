"""Pure mapping from source payloads to canonical commands (no database, no network, no I/O).

    hl7v2        parse_adt, map_adt, build_ack     HL7 v2 ADT (python-hl7 delimiters and escapes,
                                                   fields split lazily; ACKs with hl7apy)
    fhir_r4      map_bundle, map_patient, map_encounter, map_episode_of_care   (UK Core R4)
    council      map_council_event, map_csv_row, map_csv_text, CsvColumnMap
    config       SourceMappingConfig, LegalStatusLocation: per-source places and code maps
    errors       MappingError(code, message, location=…): the only error raised here

Nothing is imported here so that ``import mapping.council`` does not load FHIR models.
"""
