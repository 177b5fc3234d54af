# Sourced by .ci/run: `step NAME COMMAND...` runs COMMAND and prints how long it took;
# `step_start NAME` times whatever runs from there to the end of the script. On exit, a table
# of every step's duration and status.
_STEPS=()
_OPEN_STEP=""
_OPEN_START=0

step() {
  local name=$1 start=$SECONDS status=0
  shift
  echo "=== $name"
  "$@" || status=$?
  _STEPS+=("$(printf '%6d s  %-32s %s' $((SECONDS - start)) "$name" "$([ $status = 0 ] && echo ok || echo "failed ($status)")")")
  echo "=== $name: $((SECONDS - start)) s"
  return $status
}

step_start() {
  echo "=== $1"
  _OPEN_STEP=$1
  _OPEN_START=$SECONDS
}

_steps_report() {
  local status=$?
  if [ -n "$_OPEN_STEP" ]; then
    _STEPS+=("$(printf '%6d s  %-32s %s' $((SECONDS - _OPEN_START)) "$_OPEN_STEP" "$([ $status = 0 ] && echo ok || echo "failed ($status)")")")
  fi
  echo
  echo "=== durations (${SECONDS} s in all)"
  printf '%s\n' "${_STEPS[@]}"
  return $status
}
trap _steps_report EXIT
