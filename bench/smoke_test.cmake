# Runs replicator-bench once against a local in-memory deployment and checks
# its JSON: exit 0, no violations, every call answered, and the outcomes the
# workload must produce (a conflict workload must meet taken keys); and its latency histogram
# CSV: a header, then buckets whose counts add up to the calls.
#   cmake -DBENCH=path -DWORKLOAD=put|conflict -DJSON=out.json -DCSV=out.csv -P smoke_test.cmake
file(REMOVE ${JSON} ${CSV})
execute_process(
  COMMAND ${BENCH} --local=1x3 --storage=memory --workload=${WORKLOAD} --ops=200
          --concurrency=8 --conflict-ratio=0.5 --seed=7 --hard-timeout=150s --json=${JSON}
          --histogram-out=${CSV}
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
file(STRINGS ${CSV} lines)
list(POP_FRONT lines header)
if(NOT header STREQUAL "lower_ms,upper_ms,count,cumulative_fraction")
  message(FATAL_ERROR "histogram CSV header is '${header}'")
endif()
set(histogram_calls 0)
foreach(line IN LISTS lines)
  string(REPLACE "," ";" fields "${line}")
  list(GET fields 2 count)
  math(EXPR histogram_calls "${histogram_calls} + ${count}")
endforeach()
if(NOT histogram_calls EQUAL calls)
  message(FATAL_ERROR "the histogram CSV counts ${histogram_calls} calls, the JSON ${calls}")
endif()
