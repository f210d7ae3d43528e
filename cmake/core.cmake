# libnotmod: the pure core. No I/O, no allocation, no global state.
add_library(notmod
    src/slice.c
    src/method.c
    src/date.c
    src/etag.c
    src/precond.c
    src/range.c
    src/http1.c
    src/path.c
    src/json.c
)
target_include_directories(notmod PUBLIC ${PROJECT_SOURCE_DIR}/include)

# Capped buffers: the base the I/O layers build on (they allocate, so not part of libnotmod).
add_library(notmod_buf STATIC src/buf.c)
target_include_directories(notmod_buf PUBLIC ${PROJECT_SOURCE_DIR}/include)

nm_unit_test(slice notmod)
nm_unit_test(method notmod)
nm_unit_test(date notmod)
nm_unit_test(etag notmod)
nm_unit_test(precond notmod)
nm_unit_test(range notmod)
nm_unit_test(http1 notmod)
nm_unit_test(path notmod)
nm_unit_test(json notmod)

nm_fuzz_target(date notmod)
nm_fuzz_target(etag notmod)
nm_fuzz_target(precond notmod)
nm_fuzz_target(range notmod)
nm_fuzz_target(http1 notmod)
nm_fuzz_target(path notmod)
nm_fuzz_target(json notmod)

if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME layers COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-layers)
endif()
