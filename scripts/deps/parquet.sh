# ParquetWriter tests (sinks/tests/parquet.rs) read the files back with pyarrow and DuckDB.
python3 -c 'import pyarrow' 2>/dev/null || pip_missing+=(pyarrow)
python3 -c 'import duckdb' 2>/dev/null || pip_missing+=(duckdb)
pip_check+=(pyarrow duckdb)
