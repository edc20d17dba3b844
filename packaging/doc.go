// Package packaging holds the files of the Debian package (`make deb`):
// the systemd unit, the example environment file, the logrotate snippet,
// the maintainer scripts and nfpm's configuration. It has no Go code; its
// test builds the package and checks it from outside (dpkg-deb, dpkg -x,
// the installed binary's validate, systemd-analyze). See
// docs/operations.md.
package packaging
