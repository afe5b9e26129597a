# Sourced by llama-policy-server.sh and vllm-policy-server.sh: starting a policy server in its own
# process group, stopping all of it, the port of an engine URL. Needs $state (pid and log).

# stop: ends the server of $state/pid and everything it started (vLLM's engine processes
# outlive a killed API server otherwise), politely first.
stop() {
  if [ -s "$state/pid" ]; then
    pid=$(cat "$state/pid")
    if kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; then
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$state/pid"
  fi
}

# launch DESCRIPTION COMMAND...: runs COMMAND in the background in its own process group
# (setsid), its output appended to $state/server.log, its pid in $state/pid.
launch() {
  local description=$1
  shift
  setsid nohup "$@" >>"$state/server.log" 2>&1 </dev/null &
  echo $! > "$state/pid"
  echo "$description (pid $!); log: $state/server.log" >&2
}

# port_of URL: http://host:PORT/v1 -> PORT
port_of() {
  local url=$1 rest
  rest=${url#*://}; rest=${rest%%/*}
  case $rest in *:*) echo "${rest##*:}" ;; *) echo 80 ;; esac
}
