"""Demo agency receivers (`hub demo-agency`): REST, SOAP and XML endpoints that check what the
hub sends them the way a careful agency would (signature, schema, idempotency) and keep an
inbox that tests, benchmarks and `make run` read back."""
