module kbridge.bench/latsink

go 1.21
