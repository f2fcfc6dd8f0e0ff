"""The patient's FHIR R4 record for one call and the vocabulary to read it: codes, value sets, dates, units, drugs."""
