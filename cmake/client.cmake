# The client side: notmod get's cache and notmod check's probes, over libcurl.
add_library(notmod_client STATIC
    src/cachectl.c
    src/store.c
    src/client.c
)
target_include_directories(notmod_client PUBLIC ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(notmod_client PUBLIC notmod notmod_buf PkgConfig::CURL PkgConfig::XXHASH)

target_sources(notmod_cmd PRIVATE programs/get.c programs/check.c programs/cache.c
                   programs/cliutil.c)
target_link_libraries(notmod_cmd PRIVATE notmod_client)

nm_unit_test(cachectl notmod_client)
nm_unit_test(store notmod_client)
nm_unit_test(client notmod_client)
nm_fuzz_target(cachectl notmod_client)

if(NM_TESTS AND NOT NM_FUZZ)
    foreach(suite get check)
        add_test(NAME integration_${suite}
                 COMMAND python3 -m unittest -v test_${suite}
                 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
        # nginx's workers run as nobody: .ci/run runs the other_user suites again from a 0700
        # directory.
        set_tests_properties(integration_${suite} PROPERTIES
                             ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                             TIMEOUT 300 LABELS other_user)
    endforeach()
endif()
