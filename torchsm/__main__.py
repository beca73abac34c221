from torchsm.cli import main

main()
