# Runs replicator-bench once against a local in-memory deployment and checks
# its JSON: exit 0, no violations, every call answered, and the outcomes the
# workload must produce (a conflict workload must meet taken keys).
#   cmake -DBENCH=path -DWORKLOAD=put|conflict -DJSON=out.json -P smoke_test.cmake
file(REMOVE ${JSON})
execute_process(
  COMMAND ${BENCH} --local=1x3 --storage=memory --workload=${WORKLOAD} --ops=200
          --concurrency=8 --conflict-ratio=0.5 --seed=7 --hard-timeout=150s --json=${JSON}
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "replicator-bench exited with ${status}")
endif()
file(READ ${JSON} json)
string(JSON violations GET ${json} violations)
string(JSON calls GET ${json} calls)
string(JSON ok GET ${json} outcomes ok)
string(JSON key_exists GET ${json} outcomes key_exists)
string(JSON errors GET ${json} errors)
string(JSON confirmed GET ${json} read_back confirmed)
message(STATUS "calls ${calls}, ok ${ok}, key_exists ${key_exists}, errors ${errors}, "
               "read back ${confirmed}, violations ${violations}")
if(NOT violations EQUAL 0)
  message(FATAL_ERROR "the bench found ${violations} violations")
endif()
if(NOT calls EQUAL 200)
  message(FATAL_ERROR "expected 200 answered calls, got ${calls}")
endif()
if(NOT ok GREATER 0 OR NOT confirmed EQUAL ok)
  message(FATAL_ERROR "expected keys answered ok and every one read back (${ok} ok, ${confirmed} read back)")
endif()
if(WORKLOAD STREQUAL "conflict" AND NOT key_exists GREATER 0)
  message(FATAL_ERROR "a conflict workload answered no key_exists")
endif()
