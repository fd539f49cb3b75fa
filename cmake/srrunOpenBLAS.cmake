# OpenBLAS built on OpenMP (Debian's libopenblas-openmp-dev), as the
# imported target PkgConfig::SRRUN_OPENBLAS: for srrun's own build and for
# programs that link libsrrun.a (srrunConfig.cmake). Its pthreads build, the
# one Debian's plain openblas.pc may name, would run a second pool of
# threads that fights OpenMP's spinning workers for the cores; the
# target's library is a full path in the OpenMP build's folder, and a
# program linking it records that folder in its run path.
if(NOT TARGET PkgConfig::SRRUN_OPENBLAS)
  find_package(PkgConfig REQUIRED QUIET)
  set(_srrun_pkg_config_path "$ENV{PKG_CONFIG_PATH}")
  set(ENV{PKG_CONFIG_PATH}
    "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  pkg_check_modules(SRRUN_OPENBLAS REQUIRED IMPORTED_TARGET openblas)
  set(ENV{PKG_CONFIG_PATH} "${_srrun_pkg_config_path}")
  if(NOT SRRUN_OPENBLAS_LIBDIR MATCHES "openmp")
    message(WARNING "OpenBLAS at ${SRRUN_OPENBLAS_LIBDIR} may not be the OpenMP build; "
                    "install libopenblas-openmp-dev for full speed")
  endif()
endif()
