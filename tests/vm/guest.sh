#!/bin/busybox sh
# /init of the VM test guest that tests/vm/run builds (see oom-tests' oomprof-vm).
#
# The initramfs holds busybox, the static musl oomprof (/bin/oomprof) and static Go
# fixtures (/fx). This script sets up the cgroup version the kernel command line asks
# for (oomvm.cgroup=v1|v2), starts the daemon, runs every scenario, and reports on the
# second serial port (/dev/ttyS1), one line per fact, which the host parses and judges:
#   INFO key=value ...                         the guest: kernel, cgroup version
#   CASE name key=value ...                    one scenario: pids, exit status, files
#   FILE name bytes / base64 lines / END       a file (profiles, the daemon log)
#   DONE                                       the last line
# Nothing here decides pass or fail: the host does, with go tool pprof.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
OUT=/dev/ttyS1
say() { echo "$*" >"$OUT"; }
now() { cut -d' ' -f1 /proc/uptime; }

# A scenario that hangs must not hold the host for its whole timeout.
WATCHDOG=$(sed -n 's/.*oomvm\.watchdog=\([0-9]*\).*/\1/p' /proc/cmdline)
(
	sleep "${WATCHDOG:-300}"
	say "TIMEOUT guest watchdog after ${WATCHDOG:-300} s"
	poweroff -f
) &

CG=$(sed -n 's/.*oomvm\.cgroup=\(v[12]\).*/\1/p' /proc/cmdline)
LIMIT=$((64 << 20))
if [ "$CG" = v2 ]; then
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	ROOT=/sys/fs/cgroup/oomvm
	echo +memory >/sys/fs/cgroup/cgroup.subtree_control
	mkdir "$ROOT"
	echo +memory >"$ROOT/cgroup.subtree_control"
else
	mount -t tmpfs cgroup /sys/fs/cgroup
	mkdir /sys/fs/cgroup/memory
	mount -t cgroup -o memory memory /sys/fs/cgroup/memory
	ROOT=/sys/fs/cgroup/memory/oomvm
	mkdir "$ROOT"
fi
say "INFO kernel=$(uname -r) cgroup=$CG nproc=$(nproc) mem_kb=$(sed -n 's/MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"

# cg_make NAME LIMIT_BYTES: a memory cgroup under $ROOT.
cg_make() {
	mkdir "$ROOT/$1"
	if [ "$CG" = v2 ]; then
		echo "$2" >"$ROOT/$1/memory.max"
	else
		echo "$2" >"$ROOT/$1/memory.limit_in_bytes"
	fi
}

# oom_kills NAME: the cgroup's OOM-kill count.
oom_kills() {
	if [ "$CG" = v2 ]; then
		sed -n 's/^oom_kill \([0-9]*\)/\1/p' "$ROOT/$1/memory.events"
	else
		sed -n 's/^oom_kill \([0-9]*\)/\1/p' "$ROOT/$1/memory.oom_control"
	fi
}

# start NAME PROGRAM ARGS...: runs PROGRAM in cgroup NAME with its stdin held until
# `release NAME`; the pid lands in /tmp/NAME.pid, the output in /tmp/NAME.out.
start() {
	name=$1
	shift
	(
		while [ ! -e "/tmp/$name.go" ]; do sleep 0.1; done
		echo go
	) | sh -c 'echo 0 >/proc/self/oom_score_adj; echo $$ >"$1/cgroup.procs"; echo $$ >"/tmp/$2.pid"; shift 2; exec "$@"' \
		sh "$ROOT/$name" "$name" "$@" >"/tmp/$name.out" 2>&1 &
	eval "job_$name=\$!"
	while [ ! -s "/tmp/$name.pid" ]; do sleep 0.05; done
}
release() { touch "/tmp/$1.go"; }
pid_of() { cat "/tmp/$1.pid"; }

# finish NAME: waits for the program; its exit status lands in $st. (Not in a
# command substitution: a subshell cannot wait for this shell's jobs.)
finish() {
	release "$1" # the stdin feeder must end too: wait waits for the whole pipeline
	eval "wait \$job_$1"
	st=$?
}

# watched PID: waits (up to 60 s) until the daemon watches PID; prints yes or no.
watched() {
	i=0
	while [ $i -lt 600 ]; do
		if grep -q "watch pid $1 " /tmp/daemon.log; then
			echo yes
			return
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo no
}

# profile_of PID SECONDS: waits for PID's profile (not a pre-OOM one); prints its file
# name or "none".
profile_of() {
	i=0
	while [ $i -lt $(($2 * 10)) ]; do
		for f in /out/*-"$1"-*.pb.gz; do
			case "$f" in *.preoom.pb.gz) continue ;; esac
			if [ -e "$f" ]; then
				basename "$f"
				return
			fi
		done
		sleep 0.1
		i=$((i + 1))
	done
	echo none
}

# oom_case CASE FIXTURE: one OOM kill of FIXTURE in a $LIMIT cgroup.
oom_case() {
	cg_make "$1" "$LIMIT"
	start "$1" env FIXTURE_MEMPROFILERATE=1 "/fx/$2" -wait
	pid=$(pid_of "$1")
	w=$(watched "$pid")
	t0=$(now)
	release "$1"
	finish "$1"
	t1=$(now)
	f=$(profile_of "$pid" 60)
	say "CASE $1 kind=oom fixture=$2 pid=$pid cgroup=/oomvm/$1 limit=$LIMIT watched=$w status=$st oom_kill=$(oom_kills "$1") profile=$f run_s=$t0-$t1 done_s=$(now)"
}

mkdir /out
oomprof check >/tmp/check.txt 2>&1
say "CASE check rc=$?"

t0=$(now)
oomprof --debug run --dir /out --keep-all-kills >/tmp/daemon.log 2>&1 &
daemon=$!
i=0
# (Stops early when the daemon died: a zombie until waited for, state Z.)
while [ $i -lt 600 ] && ! grep -q "ready in" /tmp/daemon.log &&
	! grep -q '^[0-9]* ([^)]*) Z' "/proc/$daemon/stat"; do
	sleep 0.1
	i=$((i + 1))
done
if grep -q "ready in" /tmp/daemon.log; then ready=yes; else ready=no; fi
say "CASE daemon_start ready=$ready t0=$t0 t1=$(now)"

if [ $ready = yes ]; then
	oom_case oom_default oomer
	oom_case oom_pie_stripped oomer-pie-stripped

	# A normal exit (exit_group SIGKILLs the other threads) writes nothing.
	cg_make exit "$((512 << 20))"
	start exit /fx/holder -large 4 -small 100 -exit-on-stdin
	pid=$(pid_of exit)
	w=$(watched "$pid")
	release exit
	finish exit
	f=$(profile_of "$pid" 5)
	say "CASE normal_exit kind=exit fixture=holder pid=$pid watched=$w status=$st profile=$f"

	# kill -9 (kept: the daemon runs with --keep-all-kills).
	cg_make kill9 "$((512 << 20))"
	start kill9 /fx/oomer -wait
	pid=$(pid_of kill9)
	w=$(watched "$pid")
	kill -9 "$pid"
	finish kill9
	f=$(profile_of "$pid" 30)
	say "CASE kill9 kind=killed fixture=oomer pid=$pid cgroup=/oomvm/kill9 watched=$w status=$st profile=$f"

	# cgroup.kill (v2, 5.14+).
	if [ "$CG" = v2 ]; then
		cg_make cgkill "$((512 << 20))"
		if [ -e "$ROOT/cgkill/cgroup.kill" ]; then
			start cgkill /fx/oomer -wait
			pid=$(pid_of cgkill)
			w=$(watched "$pid")
			echo 1 >"$ROOT/cgkill/cgroup.kill"
			finish cgkill
			f=$(profile_of "$pid" 30)
			say "CASE cgroup_kill kind=killed fixture=oomer pid=$pid cgroup=/oomvm/cgkill watched=$w status=$st profile=$f"
		else
			say "CASE cgroup_kill kind=absent why=no-cgroup.kill"
		fi
	fi

	# Four victims at once, each in its own cgroup.
	for n in 1 2 3 4; do
		cg_make "multi$n" "$LIMIT"
		start "multi$n" env FIXTURE_MEMPROFILERATE=1 /fx/oomer -wait
	done
	for n in 1 2 3 4; do eval "w$n=\$(watched \$(pid_of multi$n))"; done
	for n in 1 2 3 4; do release "multi$n"; done
	for n in 1 2 3 4; do
		pid=$(pid_of "multi$n")
		finish "multi$n"
		f=$(profile_of "$pid" 60)
		eval "w=\$w$n"
		say "CASE multi$n kind=oom fixture=oomer pid=$pid cgroup=/oomvm/multi$n limit=$LIMIT watched=$w status=$st oom_kill=$(oom_kills "multi$n") profile=$f"
	done
fi

# A global OOM (no cgroup limit: the guest's RAM runs out). This shell and the daemon
# are exempt (oom_score_adj -1000), so the victim is the only large process.
if [ $ready = yes ]; then
	echo -1000 >/proc/self/oom_score_adj
	echo -1000 >"/proc/$daemon/oom_score_adj"
	mkdir "$ROOT/global"
	start global env FIXTURE_MEMPROFILERATE=1 /fx/oomer -wait
	pid=$(pid_of global)
	w=$(watched "$pid")
	release global
	finish global
	f=$(profile_of "$pid" 60)
	mem=$(($(sed -n 's/MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) * 1024))
	say "CASE global_oom kind=global fixture=oomer pid=$pid cgroup=/oomvm/global limit=$mem watched=$w status=$st profile=$f"
fi

kill -TERM "$daemon"
wait "$daemon"
say "CASE daemon_stop status=$?"

# preoom_case CASE TRIGGER FLAGS...: pre-OOM profiles (cgroup v2). A daemon of its own
# with FLAGS (one trigger, so the trigger that fires is known); a slow leak (1 MiB per
# 100 ms) in a cgroup with memory.high 56 MiB under memory.max 64 MiB, where the
# kernel throttles it (reclaim and sleeps: memory stalls) until memory.max kills it.
# Reports whether a pre-OOM profile was there while the process still ran, and when.
preoom_case() {
	name=$1
	trig=$2
	shift 2
	oomprof --debug run --dir /out --events "/out/events-$name.jsonl" "$@" >"/tmp/daemon-$name.log" 2>&1 &
	pd=$!
	i=0
	while [ $i -lt 600 ] && ! grep -q "ready in" "/tmp/daemon-$name.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	cg_make "$name" "$LIMIT"
	echo $((56 << 20)) >"$ROOT/$name/memory.high"
	start "$name" env FIXTURE_MEMPROFILERATE=1 /fx/oomer -chunk 1048576 -delay 100ms -wait
	pid=$(pid_of "$name")
	i=0
	w=no
	while [ $i -lt 600 ]; do
		if grep -q "watch pid $pid " "/tmp/daemon-$name.log"; then
			w=yes
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	t0=$(now)
	release "$name"
	pre=none
	pre_s=none
	# Until the kill (a zombie, state Z, until waited for), at most 120 s.
	i=0
	while [ $i -lt 1200 ] && [ -e "/proc/$pid" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; do
		if [ "$pre" = none ]; then
			for f in /out/*-"$pid"-*.preoom.pb.gz; do
				if [ -e "$f" ] && grep -qv '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then
					pre=$(basename "$f")
					pre_s=$(now)
				fi
			done
		fi
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -ge 1200 ] && kill -9 "$pid"
	finish "$name"
	kill_s=$(now)
	f=$(profile_of "$pid" 30)
	sleep 3 # the event waits up to 2 s for its profile
	kill -TERM "$pd"
	wait "$pd"
	dst=$?
	say "CASE $name kind=preoom trigger=$trig fixture=oomer pid=$pid cgroup=/oomvm/$name limit=$LIMIT watched=$w status=$st oom_kill=$(oom_kills "$name") profile=$f preoom=$pre preoom_s=$pre_s kill_s=$kill_s run_s=$t0-$kill_s daemon_status=$dst events=events-$name.jsonl"
}

if [ "$CG" = v2 ] && [ $ready = yes ]; then
	if [ -e /proc/pressure/memory ]; then
		preoom_case preoom_psi psi --pre-oom-psi some:100ms/2s
	else
		say "CASE preoom_psi kind=absent why=no-/proc/pressure-(psi=0?)"
	fi
	preoom_case preoom_high memory.high --pre-oom-high
fi

ship() {
	say "FILE $1 $(wc -c <"$2")"
	base64 "$2" >"$OUT"
	say "END"
}
ship check.txt /tmp/check.txt
ship daemon.log /tmp/daemon.log
dmesg >/tmp/dmesg.txt
ship dmesg.txt /tmp/dmesg.txt
[ -e /out/oomprof-events.jsonl ] && ship oomprof-events.jsonl /out/oomprof-events.jsonl
for f in /out/events-*.jsonl /tmp/daemon-*.log; do
	[ -e "$f" ] && ship "$(basename "$f")" "$f"
done
for f in /out/*.pb.gz; do
	[ -e "$f" ] && ship "$(basename "$f")" "$f"
done
say "DONE"
poweroff -f
