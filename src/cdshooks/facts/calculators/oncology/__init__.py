"""Oncology facts for colony-stimulating-factor orders (policy spec colony-stimulating-factors §b, §f).

``readings`` reads Observations and Conditions; ``labs`` gives the lab values and the regimen's FN
risk (f.1, f.2) in the units the policy's thresholds use; ``risk`` the diagnoses and procedures;
``regimen`` the ordered product (``products``) and the CSF history.
"""

from __future__ import annotations

from cdshooks.facts.calculators.oncology import labs
from cdshooks.facts.calculators.oncology import regimen
from cdshooks.facts.calculators.oncology import risk

CALCULATORS = labs.CALCULATORS + risk.CALCULATORS + regimen.CALCULATORS
