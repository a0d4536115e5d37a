"""Stage 4, the load generator: the measured hot path and the run orchestration.

Modules: ``spec`` (records: ``LoadSpec``, ``ClientHealth``, ``TokenCheck``, ``RunResult``),
``transport`` (the hot path), ``sse`` (parsing after a request ends), ``tokens`` (token
cross-check), ``resources`` (rusage, open files, ``/metrics``), ``run`` (``run_load``).

Built so the client is never the thing being measured:

- keep-alive connections on raw uvloop transports with httptools' C parser (the measured
  low-CPU path; aiohttp with ``TCPConnector(limit=0)`` and a large read buffer is the fallback
  and still does the side calls); no connection cap; ``RLIMIT_NOFILE`` raised up front with a
  clear error when impossible;
- the hot path only timestamps and appends raw byte chunks; SSE is parsed when a request ends,
  by C-level scans of the whole body (full JSON decoding for anything unusual);
- one process, one event loop: measured to keep up with 1,000 streams at a fraction of one
  core (see benchmarks/), so no worker processes;
- request bodies are serialised before the load phase; the heap is frozen and the GC disabled
  during the measured window; uvloop when installed;
- every run reports the client's own health (CPU seconds, event-loop lag, schedule lag) and
  flags ``client_bound`` when the numbers say the client, not the server, set the pace;
- token totals are cross-checked (client vs ``usage`` vs the server's ``/metrics`` counters) and
  a mismatch fails ``RunResult.check()``.
"""
