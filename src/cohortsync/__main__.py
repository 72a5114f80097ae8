from cohortsync.cli.main import main

main()
