"""What the benchmarks under bench/ share; each module is named for what it holds.

- ``processes``: child processes with their own log, stopped on every exit path.
- ``servers``: control planes and bare baselines started with one uvicorn command line.
- ``baselines``: the bare Starlette apps a benchmark measures facefleet against.
- ``storage``: a fresh PostgreSQL database and Redis key prefix for one configuration.
- ``api``: the control-plane calls the benchmarks make (register, cameras, leases).
- ``clients``: heartbeat clients for load generators (httpx and a raw HTTP/1.1 client).
- ``load``: simulated workers that heartbeat, run inside generator processes.
- ``drive``: the main process's side of a generator run: the window and its CPU.
- ``cpu``: CPU seconds of processes and of the machine, from /proc.
- ``prometheus``: histograms scraped from a server's /metrics and their differences.
- ``stats``: percentiles, summaries, interleaved best-of rounds, ratios.
- ``report``: number formats, aligned tables, JSON output.
- ``targets``: a benchmark's targets, checked and printed next to their figures.
- ``cli``: the options every benchmark takes and how its exit code is chosen.

This package imports nothing itself, so a server process that loads ``baselines`` pays
for Starlette alone.
"""
