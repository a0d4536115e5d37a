#!/usr/bin/env bash
# Mutation testing of the pure modules, each against the tests that cover it, with mutmut.
#
#   bash scripts/mutation.sh                  # every module below (3-40 min each on 2 busy cores)
#   bash scripts/mutation.sh verdicts/gates   # one module (path under pytest_llmperf/, no .py)
#   MUTATION_INCREMENTAL=1 bash scripts/mutation.sh verdicts/gates
#       # re-run only what the last run of that module left alive (its cache is kept in
#       # .mutmut/cache/); the printed score still counts every mutant
#
# Each module is mutated in a scratch copy of the committed tree (git archive), so the working
# tree is never touched. mutmut 2.4.5 is used (installed on first use into .mutmut/ with pip
# --target): its mutate-the-file-and-run-a-command model works with this repository's pytest
# plugin and root conftest, where mutmut 3's in-process trampolines found no covered mutant
# (tried with 3.8.1). Prints killed / total and the score per module, then the survivors' ids
# (`mutmut show ID` in the printed scratch folder shows one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${LLMPERF_VENV:-$ROOT/.venv}/bin/python
TOOLS=$ROOT/.mutmut
if [ ! -d "$TOOLS/mutmut" ]; then
    "$PY" -m pip install -q --target "$TOOLS" "mutmut==2.4.5" >/dev/null 2>&1
fi
# mutmut's cache is one SQLite file that its main process and its mutant-generator child both
# write. On 2 cores at load 8-10 a commit waited past SQLite's default 5 s busy timeout: "database
# is locked", and mutmut then hung in its exit handler (three runs lost that way on 2 December).
# Wait up to 10 min for the lock instead (a one-line patch of the private copy in .mutmut/).
grep -q "create_db=True, timeout=600" "$TOOLS/mutmut/cache.py" ||
    sed -i "s/filename=cache_filename, create_db=True)/filename=cache_filename, create_db=True, timeout=600)/" \
        "$TOOLS/mutmut/cache.py"
grep -q "create_db=True, timeout=600" "$TOOLS/mutmut/cache.py" || {
    echo "could not set mutmut's SQLite timeout in $TOOLS/mutmut/cache.py" >&2
    exit 1
}

declare -A TESTS=(
    [verdicts/gates]="tests/test_gates.py tests/test_gates_messages.py"
    [verdicts/saturation]="tests/test_saturation.py"
    # The example tests only: with its five 150-example property tests and the benchmark run a
    # surviving mutant took 25 s on 2 busy cores (739 mutants: hours).
    [verdicts/compare]="tests/test_compare.py tests/test_compare_planning.py -k 'not benchmark and not scaling and not scale_invariance and not swapping and not inverting and not monotone'"
    [metrics/summary]="tests/test_metrics.py"
    [plan/rules]="tests/test_launch_plan.py"
    # The example tests only: the three 100-example property tests of test_launch_plan.py took
    # 1.5 s of each mutant's 2 s (and `plan` through `python -m`, a subprocess, 0.1 s).
    [plan/launch_plan]="tests/test_launch_plan.py tests/test_launch_plan_mutants.py tests/test_plan_cli.py -k 'not python_dash_m and not well_formed and not aiter_on_implies and not never_offload'"
    # Without the coverage simulations (4,000 trials each, 24 s of the file's 25 s) and the
    # 200-example property test.
    [metrics/quantile_bounds]="tests/test_quantile_bounds.py tests/test_quantile_bounds_exact.py -k 'not coverage_by_simulation and not tightest_that_holds'"
    [metrics/goodput]="tests/test_goodput.py"
    [metrics/directions]="tests/test_directions.py"
    # The pure tests that import it; not the report plot (matplotlib, 1.1 s of the 1.5 s), which
    # only draws a timeline series; never the vLLM tests.
    [metrics/server]="tests/test_server_metrics.py tests/test_server_metrics_mutants.py tests/test_timeline.py -k 'not report_plots'"
    [metrics/timeline]="tests/test_timeline.py tests/test_timeline_edges.py -k 'not report_plots'"
    [verdicts/guardrails]="tests/test_server_metrics.py tests/test_guardrails_messages.py"
    [verdicts/suite_index]="tests/test_suite_index.py tests/test_suite_index_messages.py"
    [config/suite_floor]="tests/test_suite_index.py tests/test_suite_floor_edges.py"
    [verdicts/paired]="tests/test_ab_paired.py tests/test_paired_planning.py"
    [config/validate]="tests/test_config.py tests/test_config_validate.py tests/test_config_parse_mutants.py tests/test_config_load_mutants.py tests/test_config_small_mutants.py -k 'not fuzz_structured and not fuzz_arbitrary'"
    [core/redact]="tests/test_redact.py -k 'not plan_output'"
    # Config parsing: the pure tests that parse documents, without the pytester sessions and
    # instrument runs in the same files (9-23 s each) and the two hypothesis fuzzers over
    # arbitrary documents (5.4 s and 3.2 s); the mutated-valid-documents fuzzer (0.1 s) stays.
    [config/load]="tests/test_config.py tests/test_config_validate.py tests/test_load_modes.py tests/test_load_shapes.py tests/test_config_load_mutants.py -k 'not open_loop_session and not goodput_gate_fails and not misses_its_schedule and not ramped_gamma_session and not option_help and not capacity_fraction_runs_at and not fuzz_structured and not fuzz_arbitrary'"
    [config/overrides]="tests/test_config.py tests/test_config_small_mutants.py -k 'not fuzz_structured and not fuzz_arbitrary'"
    [config/files]="tests/test_config.py tests/test_config_small_mutants.py -k 'not fuzz_structured and not fuzz_arbitrary'"
    [config/guardrails]="tests/test_server_metrics.py tests/test_config_small_mutants.py -k 'guardrails_config or small_mutants'"
    [config/history]="tests/test_history_cli.py tests/test_config_small_mutants.py -k 'history_table or small_mutants'"
    [config/baseline]="tests/test_published_baseline.py tests/test_config_small_mutants.py tests/test_config_parse_mutants.py"
    [config/parse]="tests/test_config.py tests/test_config_validate.py tests/test_vision_config.py tests/test_marker_args.py tests/test_workload_keys.py tests/test_load_modes.py tests/test_load_shapes.py tests/test_launch_config.py tests/test_ab_config.py tests/test_cpu_layout.py tests/test_min_duration.py tests/test_workers.py tests/test_config_parse_mutants.py tests/test_config_load_mutants.py tests/test_config_small_mutants.py -m 'not vllm' -k 'not open_loop_session and not goodput_gate_fails and not misses_its_schedule and not ramped_gamma_session and not option_help and not capacity_fraction_runs_at and not fuzz_structured and not fuzz_arbitrary and not pytester and not plans_two_nodes and not plans_four_containers and not plan_shows_both and not usage_error and not round_trip and not pinned_moves and not prompt_seeds and not loop_runs_until and not count_still_counts and not count_alone and not unsupported_shapes and not schedule_on_one_clock and not splits_the_concurrency and not one_process_path and not hung_server and not per_process_clock and not choose_workers and not split_jobs'"
    # Detection runs fake vendor tools (real executables first on PATH): the module's only tests.
    [plan/platforms]="tests/test_platforms.py tests/test_platforms_edges.py"
    # The profiles are read through the architecture and the launch plan; the example tests only
    # (not the three 100-example property tests of test_launch_plan.py).
    [plan/profiles]="tests/test_launch_plan.py tests/test_launch_plan_mutants.py tests/test_architectures.py tests/test_profiles_mutants.py -k 'not well_formed and not aiter_on_implies and not never_offload'"
    [plan/architectures]="tests/test_architectures.py tests/test_launch_plan.py tests/test_launch_plan_mutants.py -k 'not well_formed and not aiter_on_implies and not never_offload'"
)
MODULES=("$@")
[ ${#MODULES[@]} -eq 0 ] && MODULES=("${!TESTS[@]}")

printf '%-22s %8s %8s %7s\n' module killed total score
for mod in "${MODULES[@]}"; do
    tests=${TESTS[$mod]:?unknown module $mod (known: ${!TESTS[*]})}
    # With MUTATION_INCREMENTAL=1 the survivors of the last run have already passed the mapped
    # tests; MUTATION_TESTS can name just the tests added since (one run can only add kills).
    tests=${MUTATION_TESTS:-$tests}
    work=$(mktemp -d "/tmp/llmperf-mutation-${mod//\//-}.XXXX")
    # MUTATION_REF: the commit whose package and tests are measured (default HEAD), e.g. the
    # base commit for a "before" score after new tests are committed.
    git archive "${MUTATION_REF:-HEAD}" | tar -x -C "$work"
    cache="$TOOLS/cache/${mod//\//-}.sqlite"
    if [ "${MUTATION_INCREMENTAL:-0}" = 1 ] && [ -f "$cache" ]; then
        # mutmut's own incremental mode: a mutant killed before stays killed (tests are only
        # ever added), every other one is run again against the new tests.
        cp "$cache" "$work/.mutmut-cache"
    fi
    (
        cd "$work"
        export PYTHONPATH="$work:$TOOLS" PYTHONDONTWRITEBYTECODE=1
        # A warm runner (scripts/mutation_runner.py): pytest, scipy & co. are imported once and
        # each mutant runs in a fork that re-imports only this repository's modules.
        sock="$work/runner.sock"
        eval "set -- $tests"
        "$PY" "$ROOT/scripts/mutation_runner.py" serve "$sock" "$work" -- \
            -x -q -p no:cacheprovider "$@" >runner-server.log 2>&1 &
        server=$!
        trap 'kill $server 2>/dev/null || true' EXIT
        until grep -q ready runner-server.log 2>/dev/null; do
            kill -0 $server 2>/dev/null || { cat runner-server.log; exit 1; }
            sleep 0.2
        done
        "$PY" -m mutmut run --paths-to-mutate "pytest_llmperf/$mod.py" \
            --runner "$PY $ROOT/scripts/mutation_runner.py run $sock" \
            --no-progress >mutmut.log 2>&1 || true
        if [ "${MUTATION_INCREMENTAL:-0}" = 1 ]; then
            # mutmut 2.4.5 looks cached statuses up by line *text*: a mutant on a line whose text
            # also appears earlier in the file (two dicts with the same keys) inherits that
            # line's status and is not run again. Run every such stale one on its own.
            stale=$("$PY" - <<'PY'
import sqlite3

db = sqlite3.connect(".mutmut-cache")
(h,) = db.execute("select value from MiscData where key = 'hash_of_tests'").fetchone()
rows = db.execute(
    "select id, status from Mutant where status not in ('ok_killed', 'ok_suspicious', 'skipped')"
    " and (tested_against_hash is null or tested_against_hash != ?)",
    (h,),
).fetchall()
# A few 'untested' ones are the same line-text lookup (a repeated `c = _check(n, q, confidence)`);
# many mean mutmut's own pass stopped early: rerun the script rather than start mutmut per mutant.
untested = [i for i, status in rows if status == "untested"]
if len(untested) > 20:
    rows = [(i, status) for i, status in rows if status != "untested"]
print(" ".join(str(i) for i, _ in rows))
PY
)
            for id in $stale; do
                "$PY" -m mutmut run "$id" --paths-to-mutate "pytest_llmperf/$mod.py" \
                    --runner "$PY $ROOT/scripts/mutation_runner.py run $sock" \
                    --no-progress >>mutmut.log 2>&1 || true
            done
        fi
        kill $server 2>/dev/null || true
        mkdir -p "$TOOLS/cache" && cp .mutmut-cache "$cache"
        "$PY" - "$mod" "$work" <<'PY'
import sqlite3
import sys

# Counted from mutmut's cache: killed (and "suspicious", killed slowly) over all mutants. A
# mutant never run (an interrupted pass) is not a kill: it is shown, and the run should be
# repeated with MUTATION_INCREMENTAL=1.
mod, work = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"{work}/.mutmut-cache")
counts = dict(db.execute("select status, count(*) from Mutant group by status").fetchall())
total = sum(counts.values())
killed = counts.get("ok_killed", 0) + counts.get("ok_suspicious", 0)
score = killed / total if total else float("nan")
untested = counts.get("untested", 0)
note = f", {untested} NOT RUN (rerun with MUTATION_INCREMENTAL=1)" if untested else ""
print(f"{mod:<22} {killed:>8} {total:>8} {score:>7.1%}   (scratch: {work}{note})")
PY
        "$PY" -m mutmut results 2>/dev/null | sed -n '/Survived/,$p' | sed 's/^/    /' | head -8
    )
done
