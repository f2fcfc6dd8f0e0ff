"""Tests for loading the MME factor table and the RxNorm opioid product table."""

import pathlib
import shutil

import pytest

from cdshooks.facts.calculators.opioids.tables import DATA_DIR
from cdshooks.facts.calculators.opioids.tables import load_mme_tables
from opioid_orders import TABLES

# --- loading -------------------------------------------------------------------------------------


def test_tables_carry_the_cdc_2022_factors_and_the_curated_products():
    assert TABLES.version == "cdc-2022"
    assert "MMWR Recomm Rep 2022;71(No. RR-3)" in TABLES.source
    assert TABLES.factors["3423"] == 5 and TABLES.factors["6813"] == 4.7
    assert TABLES.hourly_factors["4337"] == (2.4, "316987")
    # Every product row of spec/TERMINOLOGY.md §1 is in the table, with its ingredient.
    section_1 = {"1049621": "7804", "1049683": "7804", "1049611": "7804", "1049618": "7804",
                 "1049502": "7804", "1049563": "7804", "857002": "5489", "856999": "5489",
                 "891878": "7052", "891885": "7052", "892582": "7052", "892672": "7052",
                 "897696": "3423", "897702": "3423", "835603": "10689", "864718": "6813",
                 "864706": "6813", "577057": "4337", "245134": "4337", "245135": "4337",
                 "197696": "4337", "993781": "2670", "825411": "787390", "977939": "7814",
                 "861467": "6754", "351265": "1819", "1010600": "1819", "892531": "7052",
                 "897745": "3423", "892473": "7052", "892489": "7052", "892652": "7052", "1731999": "7052"}
    assert {code: TABLES.products[code].ingredient for code in section_1} == section_1
    assert len(TABLES.products) > 250
    assert TABLES.always_excluded == {"892652", "1731999"}
    assert TABLES.neuraxial_excluded == {"892473", "892489"}


def test_load_from_another_folder_reads_its_version(tmp_path: pathlib.Path):
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.yaml", tmp_path)
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.tsv", tmp_path)
    text = (DATA_DIR / "mme-factors-cdc-2022.yaml").read_text(encoding="utf-8")
    (tmp_path / "mme-factors-cdc-2022.yaml").write_text(
        text.replace("version: cdc-2022", "version: payer-x"), encoding="utf-8"
    )
    assert load_mme_tables(tmp_path).version == "payer-x"


def test_product_with_unknown_ingredient_fails_at_load(tmp_path: pathlib.Path):
    shutil.copy(DATA_DIR / "mme-factors-cdc-2022.yaml", tmp_path)
    shutil.copy(DATA_DIR / "rxnorm-opioid-products.yaml", tmp_path)
    text = (DATA_DIR / "rxnorm-opioid-products.tsv").read_text(encoding="utf-8")
    (tmp_path / "rxnorm-opioid-products.tsv").write_text(
        text.replace("1049621\t7804\t", "1049621\t99999\t", 1), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"row 2: ingredient 99999"):
        load_mme_tables(tmp_path)
