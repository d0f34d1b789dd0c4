# ctest -P script: a sweep the checker must fail. Runs the binary (SIM) with
# ARGS (a ;-list of flags); it must exit 1 (some run violated an invariant,
# not 0 for all passed nor 2 for a usage error) and print a failure report.
#   cmake -DSIM=build/bin/replicator-sim \
#         "-DARGS=--seeds=300;--clusters=1;--faults=membership;--unsafe=skip-settle" \
#         -P tests/sim/expect_violation.cmake
execute_process(COMMAND ${SIM} ${ARGS} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
string(REGEX MATCH "FAIL seed [0-9]+: invariant [0-9A-Z]+ violated" first "${out}")
string(REGEX MATCH "[0-9]+/[0-9]+ seeds passed[^\n]*" summary "${out}")
if(NOT rc EQUAL 1 OR NOT first)
  message(FATAL_ERROR "replicator-sim ${ARGS} exited ${rc}; want 1 with a reported violation:\n"
                      "${summary}\n${out}")
endif()
message(STATUS "${first}; ${summary}")
