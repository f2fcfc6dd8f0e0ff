"""Daily morphine milligram equivalents (MME) and the systemic-opioid wean test.

Implements spec/policies/intrathecal-pain-pump.md §f.1 (criterion I.A.2.g, facts
``opioids.daily_mme_baseline`` / ``opioids.daily_mme_current``) with the CDC 2022 factors
(``data/mme-factors-cdc-2022.yaml``) and the RxNorm product table
(``data/rxnorm-opioid-products.yaml`` / ``.tsv``), one step per module:

1. :mod:`.tables` loads both tables once at start-up;
2. :mod:`.products` identifies the opioid: product row, else bare ingredient code, else the
   RxNorm normalized name in a display or text (D9); MedicationStatements arrive as orders (D10,
   :mod:`cdshooks.fhir.medications`);
3. :mod:`.dose` gives one order its MME/day: dose x administrations/day (capped by
   maxDosePerPeriod) in mg x factor; fentanyl patches in mcg/h x 2.4;
4. :mod:`.interval` gives an order its active days ``[start, end)``;
5. :mod:`.wean` drops excluded orders (buprenorphine, intrathecal/epidural route, Infumorph,
   non-order intents, void statuses) and judges: baseline B = highest daily total over
   ``[R - lookback, R]``, current C = total on R; met when C <= 0.5 B, unknown whenever missing
   data could change the answer.

Malformed FHIR makes an order uncomputable; nothing here raises on request data.
"""
