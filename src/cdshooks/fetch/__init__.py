"""Getting the patient data a call needs: prefetch slots, then bounded calls to the EHR's FHIR server."""
