"""The economy: prepaid balances, prices, usage receipts, settlement by lineage and claims."""
