# Finds every third-party library through pkg-config. A missing one stops the
# configure step with the Debian package that provides it; ./ops/deps installs
# them all.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run ./ops/deps)")
endif()
find_package(Threads REQUIRED)

# sl_require(<VAR> <pkg-config module> <Debian package>)
function(sl_require var module debpkg)
  pkg_check_modules(${var} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "missing ${module}: install the Debian package '${debpkg}' (or run ./ops/deps)")
  endif()
endfunction()

sl_require(URING     liburing         liburing-dev)
sl_require(CK        ck               libck-dev)
sl_require(JEMALLOC  jemalloc         libjemalloc-dev)
sl_require(PROTOBUFC libprotobuf-c    libprotobuf-c-dev)
sl_require(CRITERION criterion        libcriterion-dev)
sl_require(YAML      yaml-0.1         libyaml-dev)
sl_require(JSONC     json-c           libjson-c-dev)
sl_require(MHD       libmicrohttpd    libmicrohttpd-dev)
sl_require(XXHASH    libxxhash        libxxhash-dev)
sl_require(ISAL      libisal          libisal-dev)
sl_require(CURL      libcurl          libcurl4-openssl-dev) # `sluice query`, HTTP tests
sl_require(CRYPTO    libcrypto        libssl-dev)     # HMAC of producer proofs
sl_require(ROCKSDB   rocksdb          librocksdb-dev) # projection state (engine/state)

find_program(PROTOC_C NAMES protoc-c)
if(NOT PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: install the Debian package 'protobuf-c-compiler' (or run ./ops/deps)")
endif()

if(SL_BENCH)
  find_package(benchmark QUIET)
  if(NOT benchmark_FOUND)
    message(FATAL_ERROR "Google Benchmark not found: install the Debian package 'libbenchmark-dev' (or run ./ops/deps)")
  endif()
endif()
