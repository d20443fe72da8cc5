# Compiler flags for our own code. Third-party code is never built here, so
# -Werror applies to everything we compile.
set(SL_WARN -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter)
set(SL_WARN_CXX -Wall -Wextra -Werror -Wno-unused-parameter)

add_compile_options(
  "$<$<COMPILE_LANGUAGE:C>:${SL_WARN}>"
  "$<$<COMPILE_LANGUAGE:CXX>:${SL_WARN_CXX}>"
  -fno-omit-frame-pointer            # perf call graphs on every build
  -msse4.2                           # CRC32C instruction; LIMITS.md: SSE4.2 present
)
add_compile_definitions(_GNU_SOURCE)

if(SL_SANITIZE STREQUAL "address")
  set(SL_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all)
  add_compile_definitions(SL_SANITIZED=1)
elseif(SL_SANITIZE STREQUAL "thread")
  set(SL_SAN_FLAGS -fsanitize=thread)
  # ck's x86_64 atomics are inline asm, which TSan cannot see. The compiler
  # builtins port turns its CAS into __atomic calls TSan understands (its
  # loads and stores stay volatile accesses; ring.h uses relaxed __atomic
  # loads/stores and __tsan_acquire/release annotations under SL_TSAN).
  add_compile_definitions(SL_SANITIZED=1 SL_TSAN=1 CK_USE_CC_BUILTINS=1)
elseif(NOT SL_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SL_SANITIZE must be '', 'address' or 'thread'")
endif()
if(SL_FUZZ)
  # Coverage instrumentation for all our code, so each fuzz target is guided
  # by what it reaches inside sluice_core, not only by its own file. The
  # libFuzzer runtime itself is linked only into the fuzz targets.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(SL_SAN_FLAGS)
  add_compile_options(${SL_SAN_FLAGS} -O1 -g)
  add_link_options(${SL_SAN_FLAGS})
endif()

# jemalloc is the allocator of every binary we ship. Sanitizers must own
# malloc themselves, so sanitized builds leave it out (and skip its test).
if(SL_SANITIZE STREQUAL "")
  set(SL_USE_JEMALLOC ON)
else()
  set(SL_USE_JEMALLOC OFF)
endif()

# sl_link_allocator(<target>): link jemalloc so that it replaces malloc.
function(sl_link_allocator target)
  if(SL_USE_JEMALLOC)
    target_link_libraries(${target} PRIVATE PkgConfig::JEMALLOC)
    target_compile_definitions(${target} PRIVATE SL_JEMALLOC=1)
  endif()
endfunction()
