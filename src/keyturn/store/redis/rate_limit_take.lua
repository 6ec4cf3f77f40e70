-- ARGV: P, key, now, interval, tolerance (integers, microseconds). 0 taken, or microseconds to wait.
return take(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
