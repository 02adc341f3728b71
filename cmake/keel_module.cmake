# keel_library(NAME SOURCES ...): one library per module folder, with an alias
# keel::<module>, public headers in include/, private code in src/, and the
# project's warnings as errors.
function(keel_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

function(keel_library name)
  cmake_parse_arguments(arg "" "" "SOURCES" ${ARGN})
  add_library(keel_${name} STATIC ${arg_SOURCES})
  add_library(keel::${name} ALIAS keel_${name})
  target_include_directories(keel_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                          PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  keel_warnings(keel_${name})
endfunction()
