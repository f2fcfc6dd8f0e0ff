"""The MME factor table and the RxNorm opioid product table, loaded once at start-up."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from dataclasses import field
from types import MappingProxyType
from typing import Any
from typing import Mapping

import yaml

from cdshooks.facts.calculators.opioids.products import Product
from cdshooks.facts.calculators.opioids.products import load_products
from cdshooks.fhir.read import as_dict
from cdshooks.fhir.read import positive

DATA_DIR = pathlib.Path(__file__).resolve().parents[3] / "data"
FACTORS_FILE = "mme-factors-cdc-2022.yaml"
PRODUCTS_FILE = "rxnorm-opioid-products.yaml"


@dataclass(frozen=True)
class MmeTables:
    """Factor and product tables, loaded once at startup."""

    version: str
    source: str
    factors: Mapping[str, float]  # ingredient -> MME per mg/day
    hourly_factors: Mapping[str, tuple[float, str]]  # ingredient -> (MME per mcg/h, dose form)
    names: Mapping[str, str]  # every opioid ingredient code -> name
    no_factor: frozenset[str]
    excluded_ingredients: frozenset[str]
    products: Mapping[str, Product]
    always_excluded: frozenset[str]
    neuraxial_excluded: frozenset[str]
    hcpcs_system: str
    excluded_hcpcs: frozenset[str]
    by_name: Mapping[str, str] = field(default_factory=dict)  # ingredient name -> code
    dose_form_codes: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> code
    # Memo of products.identify: medication concept signature -> Drug | None.
    identified: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


def load_mme_tables(data_dir: pathlib.Path | None = None) -> MmeTables:
    """Load the factor table and the RxNorm product table (default: the package's data/ folder)."""
    folder = pathlib.Path(data_dir) if data_dir is not None else DATA_DIR
    factor_path, product_path = folder / FACTORS_FILE, folder / PRODUCTS_FILE
    factor_doc, product_doc = _read_yaml(factor_path), _read_yaml(product_path)
    factors, hourly, names = _parse_factors(factor_doc, factor_path)
    no_factor = _name_map(factor_doc, "no_factor", factor_path)
    excluded = _name_map(factor_doc, "excluded", factor_path)
    names.update(no_factor)
    names.update(excluded)
    table = load_products(product_doc, product_path, names)
    return MmeTables(
        version=str(_required(factor_doc, "version", factor_path)),
        source=str(_required(factor_doc, "source", factor_path)),
        factors=MappingProxyType(factors),
        hourly_factors=MappingProxyType(hourly),
        names=MappingProxyType(names),
        no_factor=frozenset(no_factor),
        excluded_ingredients=frozenset(excluded),
        products=MappingProxyType(dict(table.products)),
        always_excluded=table.always_excluded,
        neuraxial_excluded=table.neuraxial_excluded,
        hcpcs_system=table.hcpcs_system,
        excluded_hcpcs=table.excluded_hcpcs,
        by_name=MappingProxyType({name.lower(): code for code, name in names.items()}),
        dose_form_codes=MappingProxyType({name.lower(): code for code, name in table.dose_forms.items()}),
    )


def _read_yaml(path: pathlib.Path) -> dict:
    """Read one YAML data file that must hold a mapping."""
    with open(path, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return doc


def _required(doc: dict, key: str, path: pathlib.Path) -> Any:
    """Return doc[key] or fail with the file name."""
    if doc.get(key) in (None, ""):
        raise ValueError(f"{path}: missing '{key}'")
    return doc[key]


def _parse_factors(doc: dict, path: pathlib.Path) -> tuple[dict, dict, dict]:
    """Split the factor rows into per-mg factors, per-mcg/h factors and ingredient names."""
    factors: dict[str, float] = {}
    hourly: dict[str, tuple[float, str]] = {}
    names: dict[str, str] = {}
    rows = _required(doc, "factors", path)
    for code, row in as_dict(rows).items():
        row = as_dict(row)
        factor = positive(row.get("factor"))
        if not isinstance(row.get("name"), str) or factor is None:
            raise ValueError(f"{path}: factors.{code}: needs a name and a positive factor")
        names[str(code)] = row["name"]
        if row.get("per") == "mcg/h":
            if not row.get("dose_form"):
                raise ValueError(f"{path}: factors.{code}: a per-mcg/h factor needs dose_form")
            hourly[str(code)] = (factor, str(row["dose_form"]))
        else:
            factors[str(code)] = factor
    return factors, hourly, names


def _name_map(doc: dict, key: str, path: pathlib.Path) -> dict[str, str]:
    """Read a `code: name` section."""
    section = doc.get(key) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: '{key}' must map ingredient codes to names")
    return {str(code): str(name) for code, name in section.items()}
