module oomprof.test/fixtures

go 1.19
