"""The benches' shared harness: one place for each thing every bench needs, imported by module.

- bench.harness.data: the benchmark corpus (../shared/bench/corpus.jsonl.gz) and its first-N slices, the
  bundled sample, the web pages;
- bench.harness.engine: `bench_engine` (fi_spark.engine.start_engine, stopped on exit), `bench_config`, and
  `stage_context`, the one place a bench builds a StageContext;
- bench.harness.fault_server: the fault-injecting test server (its one import in bench/), in-process or as a
  subprocess (`fault_server_process`);
- bench.harness.peers: `run_peer`, a child process with a deadline whose failure or hang is a printed row;
- bench.harness.measure: peak memory of a process tree, CPU seconds;
- bench.harness.table: Markdown tables, ratios, growth per size;
- bench.harness.datatrove: DataTrove's own virtualenv (the peer of dedup and llm_client);
- bench.harness.real_model: requests to the real local model server as the stages send them;
- bench.harness.scoring: a run's tables without Spark, AUC, judge.v4's likelihood lift.

Nothing is imported here, so `python -m bench.harness.fault_server` starts without Spark.
"""
