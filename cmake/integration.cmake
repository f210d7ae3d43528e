# Integration tests of notmod serve: the real binary on 127.0.0.1:0, raw sockets, curl and wget.
if(NM_TESTS AND NOT NM_FUZZ)
    foreach(theme conditional http1 paths lifecycle clients)
        add_test(NAME integration_serve_${theme}
                 COMMAND python3 -m unittest -v test_serve_${theme}
                 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
        set_tests_properties(integration_serve_${theme} PROPERTIES
                             ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                             TIMEOUT 300)
    endforeach()
endif()

# Three nodes behind HAProxy: the load-balancer problem, and content ETags removing it.
if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME integration_cluster COMMAND python3 -m unittest -v test_cluster
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
    set_tests_properties(integration_cluster PROPERTIES
                         ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                         TIMEOUT 300)
endif()

# Deploys: replicas at two versions, and a root swapped under a running server.
if(NM_TESTS AND NOT NM_FUZZ)
    add_test(NAME integration_deploy COMMAND python3 -m unittest -v test_deploy
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/integration)
    set_tests_properties(integration_deploy PROPERTIES
                         ENVIRONMENT "NOTMOD=$<TARGET_FILE:notmod_cmd>;PYTHONDONTWRITEBYTECODE=1"
                         TIMEOUT 300)
endif()
