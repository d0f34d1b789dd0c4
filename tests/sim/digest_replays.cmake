# ctest -P script: `replicator-sim --seed=N` replays a run exactly. Runs the
# binary (SIM) twice with one seed and flags, and once with the next seed;
# the two `history digest: HEX` lines must be equal, the third different.
#   cmake -DSIM=build/bin/replicator-sim -P tests/sim/digest_replays.cmake
set(flags --clusters=3 --nodes=3 --faults=all)
foreach(run first replay other)
  set(seed 7)
  if(run STREQUAL "other")
    set(seed 8)
  endif()
  execute_process(COMMAND ${SIM} --seed=${seed} ${flags}
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "replicator-sim --seed=${seed} failed (${rc}):\n${out}")
  endif()
  string(REGEX MATCH "\nhistory digest: [0-9a-f]+\n" digest_${run} "\n${out}")
  if(NOT digest_${run})
    message(FATAL_ERROR "no 'history digest: HEX' line in:\n${out}")
  endif()
  string(STRIP "${digest_${run}}" digest_${run})
  message(STATUS "seed ${seed}: ${digest_${run}}")
endforeach()
if(NOT digest_first STREQUAL digest_replay)
  message(FATAL_ERROR "a replay of seed 7 differs: '${digest_first}' vs '${digest_replay}'")
endif()
if(digest_first STREQUAL digest_other)
  message(FATAL_ERROR "seeds 7 and 8 have the same history digest '${digest_first}'")
endif()
