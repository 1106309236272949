"""The seed's playbook as 18 named steps in five phases, each a function of a run's `Context`.

    preparation    1 preflight  2 schema  3 api-smoke
    migration      4 export  5 transform  6 upload-sessions  7 load
    validation     8 parity  9 aggregations  10 benchmark
    cutover        11 dual-read  12 dual-write  13 performance  14 cutover  15 monitor
    finalization   16 finalize-sessions  17 rollback  18 report

The seed flips `dataSource` to dual-read (11) before `writeMode` to dual-write (12). We keep its
names but move the flags through the guarded stages of etl.cutover.stages, where MySQL receives
the app's writes before any browser reads it (a read of a MySQL that misses writes is stale):
step 11 enters dual-write then shadow (browsers compare MySQL's answers; the step checks the API
path itself, etl.api.verify), step 12 enters live (the seed's dual-read with dual-write: MySQL
primary, IndexedDB fallback, both written), 14 goes on to rampdown and complete (MySQL only).
Every forward move passes its guards (parity, expectations, a fresh benchmark and monitor report,
and from shadow on the browsers' consistency reports). A cutover step finds the flags where a
killed run left them and goes on from there, so running it again changes nothing twice.

A breach in the post-cutover monitor (15) does not stop the run there: it goes to step 17, which
rolls the flags back to IndexedDB and ends the run failed with the breach as the reason.

The package: the run's shared `Context` and options (context.py), one module per phase
(preparation, migration, validation, cutover, finalization), the steps in order (catalog.py) and
the runner (runner.py).
"""
