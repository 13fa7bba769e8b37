# The floors of the code base (docs/architecture.md) and what each may #include:
#   analysis/                          floor 0
#   corruptions/, metrics/             floor 1 (siblings: neither includes the other)
#   io/                                floor 2
#   reports/                           floor 3
#   harness/                           floor 4 (the driver and the CLI)
#   bench/                             analysis/, metrics/ and io/ only
# A file may include its own floor and the floors below it. tests/, tools/ and fuzz
# harnesses may include anything.
#
# ctest `layering` runs:  cmake -DROOT=<repo> -DWORK=<scratch dir> -P tests/layering.cmake
# It first proves that the check catches an upward include (a scratch tree with one
# planted in io/), then checks the repository: every violation is listed as
# FILE: includes PATH (X/ may not include Y/), and the script fails.

cmake_minimum_required(VERSION 3.18)
set(MR_FLOORS analysis corruptions metrics io reports harness bench)
set(MR_ALLOW_analysis analysis)
set(MR_ALLOW_corruptions analysis corruptions)
set(MR_ALLOW_metrics analysis metrics)
set(MR_ALLOW_io analysis corruptions metrics io)
set(MR_ALLOW_reports analysis corruptions metrics io reports)
set(MR_ALLOW_harness analysis corruptions metrics io reports harness)
set(MR_ALLOW_bench analysis metrics io bench)

# Violations of the tree at `root` into the list variable `out`.
function(mr_check_tree root out)
  set(bad "")
  foreach(floor ${MR_FLOORS})
    file(GLOB_RECURSE files ${root}/${floor}/*.c ${root}/${floor}/*.h)
    foreach(f ${files})
      # only the #include "..." lines (whole C lines would split at ';' in a CMake list)
      file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
      get_filename_component(dir ${f} DIRECTORY)
      foreach(line IN LISTS lines)
        if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
          continue()
        endif()
        set(inc ${CMAKE_MATCH_1})
        # quoted includes resolve against the including file's directory, then the root
        get_filename_component(p ${inc} ABSOLUTE BASE_DIR ${dir})
        if(NOT EXISTS ${p})
          get_filename_component(p ${inc} ABSOLUTE BASE_DIR ${root})
        endif()
        file(RELATIVE_PATH rel ${root} ${p})
        string(REGEX MATCH "^[^/]+" top "${rel}")
        if(NOT top IN_LIST MR_FLOORS OR "${rel}" STREQUAL "${top}")
          continue() # outside the floors (a system or generated header)
        endif()
        if(NOT top IN_LIST MR_ALLOW_${floor})
          file(RELATIVE_PATH frel ${root} ${f})
          list(APPEND bad "${frel}: includes ${rel} (${floor}/ may not include ${top}/)")
        endif()
      endforeach()
    endforeach()
  endforeach()
  set(${out} "${bad}" PARENT_SCOPE)
endfunction()

if(NOT ROOT OR NOT WORK)
  message(FATAL_ERROR "usage: cmake -DROOT=<repo> -DWORK=<scratch dir> -P tests/layering.cmake")
endif()

# 1. the check catches what it is for: an io/ file that includes the driver
set(t ${WORK}/layering-selftest)
file(REMOVE_RECURSE ${t})
file(WRITE ${t}/harness/mr_grid.h "/* the driver */\n")
file(WRITE ${t}/io/mr_ok.h "#include \"../analysis/mr_error.h\"\n")
file(WRITE ${t}/analysis/mr_error.h "/* floor 0 */\n")
file(WRITE ${t}/io/mr_up.c "#include <stdio.h>\n#include \"mr_ok.h\"\n#include \"../harness/mr_grid.h\"\n")
file(WRITE ${t}/bench/b.c "#include \"analysis/mr_error.h\"\n#include \"harness/mr_grid.h\"\n")
mr_check_tree(${t} planted)
file(REMOVE_RECURSE ${t})
set(want "io/mr_up.c: includes harness/mr_grid.h (io/ may not include harness/)")
list(FIND planted "${want}" at)
list(LENGTH planted n_planted)
if(at LESS 0 OR NOT n_planted EQUAL 2)
  message(FATAL_ERROR "layering self-test: expected the 2 planted upward includes, got: ${planted}")
endif()

# 2. the repository
mr_check_tree(${ROOT} found)
if(found)
  list(LENGTH found n)
  string(REPLACE ";" "\n" text "${found}")
  message(FATAL_ERROR "${n} upward include(s) (docs/architecture.md, \"Floors\"):\n${text}")
endif()
message(STATUS "layering: no upward includes")
