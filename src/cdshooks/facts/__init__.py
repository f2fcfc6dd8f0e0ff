"""Facts that policies read: mappings (JSONPath over the record) and calculators, loaded once and memoised per order."""
