# `cmake --install` gives an installed CMake package:
#   find_package(bla_train REQUIRED)  then  target_link_libraries(app PRIVATE bla::bla)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS bla bla_logging EXPORT bla_train_targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET bla_sentencepiece)  # dlopened from beside libbla.so
  install(TARGETS bla_sentencepiece LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/bla DESTINATION include FILES_MATCHING PATTERN "*.h")
install(EXPORT bla_train_targets NAMESPACE bla:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bla_train)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/bla_trainConfig.cmake.in
  ${PROJECT_BINARY_DIR}/bla_trainConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bla_train)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/bla_trainConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/bla_trainConfig.cmake ${PROJECT_BINARY_DIR}/bla_trainConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bla_train)
