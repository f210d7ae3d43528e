# The server's I/O shell: files, connections, the event loop.
add_library(notmod_server STATIC
    src/config.c
    src/mime.c
    src/log.c
    src/filecache.c
    src/conn.c
    src/server.c
)
target_include_directories(notmod_server PUBLIC ${PROJECT_SOURCE_DIR}/include
                           PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(notmod_server PUBLIC notmod notmod_buf PkgConfig::XXHASH Threads::Threads)

nm_unit_test(buf notmod_buf)
nm_unit_test(mime notmod_server)
nm_unit_test(conn notmod_server)
nm_fuzz_target(conn notmod_server)
