# The local platform (`starlog deploy`) and its tests signal processes with
# the `kill` program (procps), not the shell's builtin.
type -P kill >/dev/null 2>&1 || apt_missing+=(procps)
