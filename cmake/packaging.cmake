# Packaging: the install rules for everything but the two binaries (which relay/ and tools/
# install to bin) and the CPack settings for the .deb and the .rpm. The package layout is the Go
# relay's, so swapping packages is drop-in:
#   /usr/bin/influxdb-relay, /usr/bin/influxdb-relay-convert,
#   /etc/influxdb-relay/influxdb-relay.conf (conffile / %config(noreplace)),
#   /lib/systemd/system/influxdb-relay.service, man pages and docs under /usr/share,
#   /var/lib/influxdb-relay (the spool directory, owned by the service user, mode 0750).
# The packages come out the same whatever CMAKE_INSTALL_PREFIX the tree was configured with
# (the default /usr/local included): CPack installs with CPACK_PACKAGING_INSTALL_PREFIX=/usr,
# every destination is relative to the install-time prefix, and the config and the unit are
# placed by an install script that reads that prefix (cmake/install-system-files.cmake.in).
# CMAKE_INSTALL_PREFIX only matters to a local `cmake --install` (with another prefix than /usr
# the config and unit go under that prefix). scripts/package-test.sh builds the packages the
# release way with the default prefix and with another one, and checks them:
#   cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DRELAY_WERROR=OFF \
#       && cmake --build build-pkg && cd build-pkg && cpack -G DEB

include(GNUInstallDirs)

set(IR_PKG_NAME influxdb-relay)
set(IR_PKG_MAINTAINER
    "influxdb-relay maintainers <maintainers@users.noreply.r-seed-4b9ba622.example>")
set(IR_PKG_SRC ${CMAKE_SOURCE_DIR}/packaging)
set(IR_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)

# The package paths of the config and the unit (fixed: packages always install under /usr).
set(IR_PKG_PREFIX /usr)
set(IR_CONF_DIR /etc/${IR_PKG_NAME})
set(IR_UNIT_DIR /lib/systemd/system)
set(IR_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/${IR_PKG_NAME})

configure_file(${CMAKE_SOURCE_DIR}/cmake/install-system-files.cmake.in
    ${IR_PKG_OUT}/install-system-files.cmake @ONLY)
install(SCRIPT ${IR_PKG_OUT}/install-system-files.cmake)

# Man pages and the Debian changelog are installed compressed with gzip -9n: Debian policy and
# lintian want maximum compression, and -n (no name, no timestamp) keeps the package
# reproducible. The conf(5) page comes from the configuration work; until it exists the package
# simply lacks it (scripts/package-test.sh fails on that).
set(IR_VERSION ${PROJECT_VERSION})
set(IR_MAINTAINER ${IR_PKG_MAINTAINER})
configure_file(${IR_PKG_SRC}/deb/changelog ${IR_PKG_OUT}/changelog @ONLY)
set(IR_GZ_SOURCES
    ${CMAKE_SOURCE_DIR}/docs/influxdb-relay.8
    ${CMAKE_SOURCE_DIR}/docs/influxdb-relay.conf.5
    ${CMAKE_SOURCE_DIR}/docs/influxdb-relay-convert.1
    ${IR_PKG_OUT}/changelog)
set(IR_GZ_OUTPUTS "")
foreach(src ${IR_GZ_SOURCES})
    if(NOT EXISTS ${src})
        continue()
    endif()
    get_filename_component(base ${src} NAME)
    set(gz ${IR_PKG_OUT}/${base}.gz)
    add_custom_command(OUTPUT ${gz}
        COMMAND sh -c [[gzip -9n < "$1" > "$2"]] sh ${src} ${gz}
        DEPENDS ${src}
        COMMENT "gzip -9n ${base}"
        VERBATIM)
    list(APPEND IR_GZ_OUTPUTS ${gz})
    string(REGEX MATCH "[0-9]$" section ${base})
    if(base STREQUAL "changelog")
        install(FILES ${gz} DESTINATION ${IR_DOC_DIR})
    else()
        install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
    endif()
endforeach()
add_custom_target(ir_packaging_files ALL DEPENDS ${IR_GZ_OUTPUTS})

install(FILES ${IR_PKG_SRC}/deb/copyright DESTINATION ${IR_DOC_DIR})
# The operator's documentation the man pages refer to.
install(FILES ${CMAKE_SOURCE_DIR}/docs/deployment.md ${CMAKE_SOURCE_DIR}/docs/operations.md
    ${CMAKE_SOURCE_DIR}/docs/queue-and-retry.md DESTINATION ${IR_DOC_DIR})
if(EXISTS ${CMAKE_SOURCE_DIR}/docs/deploy)
    install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/deploy/ DESTINATION ${IR_DOC_DIR}/examples
        FILES_MATCHING PATTERN "*.conf" PATTERN "*.cfg")
endif()

# ----------------------------------------------------------------------------- CPack, common
set(CPACK_GENERATOR "DEB;RPM")
set(CPACK_PACKAGE_NAME ${IR_PKG_NAME})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "influxdb-relay")
set(CPACK_PACKAGE_CONTACT ${IR_PKG_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "replicates InfluxDB 1.x writes to several servers")
set(CPACK_PACKAGE_DESCRIPTION
    "influxdb-relay accepts InfluxDB 1.x writes (HTTP /write and UDP line
protocol), validates them and sends each one to every configured InfluxDB
server, buffering and retrying in order for servers that are down. Behind a
load balancer, two relays and two InfluxDB servers make writes and queries
highly available. It replaces the Go influxdb-relay: same paths, same
configuration keys (as INI), same log lines and HTTP answers.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${IR_PKG_PREFIX})
set(CPACK_STRIP_FILES TRUE)
# Not relocatable: the config and unit paths are fixed, and the unit names /usr/bin.
set(CPACK_PACKAGE_RELOCATABLE OFF)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
# /etc and /lib paths are absolute on purpose (see above); both generators support them.
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)

# ----------------------------------------------------------------------------- .deb
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${IR_PKG_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps (dpkg-dev) computes the library dependencies; adduser runs in postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${IR_PKG_SRC}/deb/postinst ${IR_PKG_SRC}/deb/prerm ${IR_PKG_SRC}/deb/postrm
    ${IR_PKG_SRC}/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

# ----------------------------------------------------------------------------- .rpm
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_LICENSE MIT)
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
# rpmbuild finds the shared-library Requires itself; the package provides no library.
set(CPACK_RPM_PACKAGE_AUTOREQ yes)
set(CPACK_RPM_PACKAGE_AUTOPROV no)
set(CPACK_RPM_PACKAGE_REQUIRES_PRE "shadow-utils")
# CPack marks every file with an absolute destination %config; the unit is not a config file
# (local changes go in drop-ins), so it is listed here with plain attributes instead.
set(CPACK_RPM_USER_FILELIST
    "%config(noreplace) ${IR_CONF_DIR}/${IR_PKG_NAME}.conf"
    "%attr(644,root,root) ${IR_UNIT_DIR}/influxdb-relay.service"
    "%dir %attr(750,${IR_PKG_NAME},${IR_PKG_NAME}) /var/lib/${IR_PKG_NAME}")
# Directories owned by the filesystem/systemd/man packages must not be owned by this one.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /lib /lib/systemd /lib/systemd/system /usr/share/man /usr/share/man/man1
    /usr/share/man/man5 /usr/share/man/man8 /var /var/lib)
# No /usr/lib/.build-id links and no debuginfo subpackage: the binaries are stripped.
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none")
configure_file(${IR_PKG_SRC}/rpm/changelog ${IR_PKG_OUT}/rpm-changelog @ONLY)
set(CPACK_RPM_CHANGELOG_FILE ${IR_PKG_OUT}/rpm-changelog)
set(CPACK_RPM_PRE_INSTALL_SCRIPT_FILE ${IR_PKG_SRC}/rpm/preinstall.sh)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${IR_PKG_SRC}/rpm/postinstall.sh)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${IR_PKG_SRC}/rpm/preuninstall.sh)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${IR_PKG_SRC}/rpm/postuninstall.sh)

include(CPack)
