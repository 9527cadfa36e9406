# The local platform (`starlog deploy`) and its tests signal processes with
# the `kill` program (procps), not the shell's builtin.
type -P kill >/dev/null 2>&1 || apt_missing+=(procps)
# The deploy renderers' validators (deploy/tests/render.rs): docker-compose
# (Debian's 1.x package: `config` needs no Docker daemon), kubernetes-validate
# (offline schemas of each Kubernetes version), systemd-analyze (verify).
command -v docker-compose >/dev/null 2>&1 || apt_missing+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || apt_missing+=(systemd)
command -v kubernetes-validate >/dev/null 2>&1 || pip_missing+=(kubernetes-validate)
pip_check+=(kubernetes_validate)
