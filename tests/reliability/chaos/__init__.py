"""Chaos scenarios: real engine processes running real shell commands, killed on purpose.

Each scenario is a plain function of a fresh queue (a helpers.Backend), a size and a random
seed, and returns a `Result`: what it ran and what went wrong. tests/reliability/test_chaos.py
runs small, fixed forms of them; scripts/soak.py runs them many times with random sizes and
timings. The scenarios look at the queue only through the Store and the CLI, so each runs on
every backend.

- kill9.py: scenario 1, `kill -9` of engines with jobs running;
- crashes.py: scenario 2, a crash at each step of a job's life, and scenario 4, a poison job;
- enqueuers.py: scenario 3, concurrent enqueuers while the engine runs;
- harness.py: engines (on helpers' EngineGroup), enqueuing, and judging the engines' logs;
- tracking.py: commands that record their runs, and judging jobs by those records;
- result.py: the `Result` record.

What counts as what:

- lost: a job the queue accepted whose work was not done: missing from the queue, or in a
  final state it should not be in (dead, canceled, or pending/failed once a `--until-empty`
  engine has exited), or completed while its command never finished on the completing run;
- duplicated_while_running: two runs of one job alive at the same time. Each tracked command
  records its pid; a run that finds the previous run's process still alive (same job id in its
  environment, not a zombie) writes an overlap line. Runs that both finished are also compared
  by their start/end timestamps, and the job's attempt history must show each attempt settled
  before the next began. Counted once per job, however much evidence. In scenario 3 (no crash
  at all) every execution of a job beyond the first counts;
- stuck: a job left in `processing` when everything is over;
- problems: everything else that is wrong (a traceback or "database is locked" on a stderr, a
  process of a dead engine's job still alive, a crash loop, a wrong attempt history, ...).
"""
