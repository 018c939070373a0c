from valyent_cli.local.runner import main

if __name__ == "__main__":
    main()
