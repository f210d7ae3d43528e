# Golden request/response exchanges through the in-memory connection (tests/exchanges/README.md).
if(NM_TESTS AND NOT NM_FUZZ)
    add_executable(run_exchanges tests/exchanges/run_exchanges.c)
    target_link_libraries(run_exchanges PRIVATE notmod_server)
    add_test(NAME exchanges COMMAND run_exchanges ${PROJECT_SOURCE_DIR}/tests/exchanges)
endif()
