from dlvsnap.cli import main

main()
