"""Benchmark harness: silverizer vs DuckDB vs pandas converting vacancy-like bronze to Parquet."""
